"""Re-chunking documents for a model with a smaller window: a live re-embed's first step.

A document whose chunks the new model would see less of than the old one did is chunked again
from the text SQL keeps (``documents.text``: the parsed text, already redacted) with a chunker
bounded in the new model's tokens and window, and written as an ordinary update of that
document's chunks under the collection's current model: its new chunks embedded by the current
model (reusing stored vectors of the same text), SQL and every index in one write, the
generation moved. The document keeps its row, text, version, tenant and ACL (which the write
does not touch: an ACL change meanwhile stands). Smaller chunks fit the old model's larger
window too, so searches go on with the old model, and each document is wholly old-chunked or
wholly new-chunked at any instant.

The chunker is ingest's own (``Chunker.chunk``) run over the document's blocks rebuilt from
what SQL has: the text split at the block separator (so the blocks assemble to exactly the
stored text and every span points into it), each piece taking the section, page and OCR flag
of the first chunk over it; a piece no chunk covers was a heading (section context, not a
body), and a piece that reads as a Markdown table and was chunked as one (pieces carrying its
header, or one chunk that is all of it) is a table. Re-chunking a document is idempotent: what
it would write again is what it has, and that is not written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, select, update

from ragstack.domain import ChunkDraft, CollectionInfo
from ragstack.embedding import Embedder, reuse_or_embed
from ragstack.indexing import CollectionIndexes
from ragstack.ingest.chunking import BLOCK_SEPARATOR, Block, Chunk, Chunker
from ragstack.ingest.prepare import text_hash
from ragstack.ingest.safety import looks_like_instructions
from ragstack.parsing.tables import is_markdown_table
from ragstack.store import Store, index_text
from ragstack.store.models import ChunkRow, DocumentRow, ReembedRow, utcnow

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
CHUNK_SETTING = "chunk_max_tokens"  # collection_settings key: the collection's chunk bound
_D = DocumentRow.__table__  # type: ignore[attr-defined]
_C = ChunkRow.__table__  # type: ignore[attr-defined]
_R = ReembedRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StoredChunk:
    """What SQL keeps of a chunk that says where it came from."""

    section: str
    page: int | None
    char_start: int
    char_end: int
    ocr: bool


def bounded(chunker: Chunker, max_tokens: int) -> Chunker:
    """``chunker`` (its tokenizer, its overlap as far as it fits) bounded at ``max_tokens``."""
    if max_tokens >= chunker.max_tokens:
        return chunker
    return Chunker(
        chunker.counter, max_tokens=max_tokens, overlap_tokens=min(chunker.overlap, max_tokens // 2)
    )


def chunk_bound(store: Store, collection_id: int) -> int | None:
    """The collection's own chunk bound (``CHUNK_SETTING``), recorded when a live re-embed
    re-chunked it for a model with a smaller window; None if it has none."""
    stored = store.get_setting(collection_id, CHUNK_SETTING)
    return int(stored) if stored is not None and stored.isdigit() else None


def collection_chunker(store: Store, collection_id: int, chunker: Chunker) -> Chunker:
    """``chunker`` within the collection's own chunk bound, if it has one."""
    bound = chunk_bound(store, collection_id)
    return chunker if bound is None else bounded(chunker, bound)


def stored_blocks(text: str, chunks: Sequence[StoredChunk]) -> list[Block]:
    """A document's blocks as far as SQL knows them (see the module docstring); they
    assemble to exactly ``text``."""
    ordered = sorted(chunks, key=lambda c: c.char_start)
    blocks: list[Block] = []
    pos = i = 0
    for piece in text.split(BLOCK_SEPARATOR):
        start, end = pos, pos + len(piece)
        pos = end + len(BLOCK_SEPARATOR)
        while i < len(ordered) and ordered[i].char_end <= start:
            i += 1  # over an earlier piece only
        over = ordered[i] if i < len(ordered) and ordered[i].char_start < end else None
        if over is None:
            blocks.append(Block(piece, "title"))
            continue
        label = over.section.split("\n", 1)[0]  # a table piece's context: its header after it
        kind = "table" if _table(piece, start, end, ordered[i:]) else "paragraph"
        blocks.append(Block(piece, kind, over.page, (label,) if label else (), over.ocr))
    return blocks


def _table(piece: str, start: int, end: int, after: Sequence[StoredChunk]) -> bool:
    """Whether a piece was chunked as a table: it reads as one, its chunks keep within it,
    and they are pieces of a table (the later ones carry its header as context) or one
    chunk that is the whole of it. (A table in a paragraph block is chunked as text.)"""
    if not is_markdown_table(piece):
        return False
    over = [c for c in after if c.char_start < end]
    if any(c.char_start < start or c.char_end > end for c in over):
        return False
    if len(over) == 1:
        return (over[0].char_start, over[0].char_end) == (start, end)
    return all("\n" in c.section for c in over[1:])


@dataclass
class RechunkStats:
    documents: int = 0
    chunks_before: int = 0
    chunks_after: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "documents": self.documents,
            "chunks_before": self.chunks_before,
            "chunks_after": self.chunks_after,
        }


def add_to_report(conn: Connection, run_id: int, stats: RechunkStats) -> None:
    """Count a re-chunk in its re-embed run's report, in the caller's transaction."""
    raw = conn.execute(select(_R.c.report).where(_R.c.id == run_id)).scalar_one()
    report = json.loads(raw or "{}")
    done = report.get("rechunk", {})
    report["rechunk"] = {k: int(done.get(k, 0)) + v for k, v in stats.to_dict().items()}
    conn.execute(
        update(_R)
        .where(_R.c.id == run_id)
        .values(report=json.dumps(report, sort_keys=True), heartbeat_at=utcnow())
    )


class Rechunker:
    """Re-chunks a collection's documents with ``chunker`` (bounded for the new model) and
    writes them under the current model (``embedder``, asked for when there is something to
    embed); counts go to re-embed run ``run_id``."""

    def __init__(
        self,
        store: Store,
        info: CollectionInfo,
        embedder: Callable[[], Embedder],
        chunker: Chunker,
        run_id: int,
    ) -> None:
        self.store = store
        self.info = info
        self.embedder = embedder
        self.chunker = chunker
        self.run_id = run_id

    def rechunk(self, document_ids: Sequence[int], indexes: CollectionIndexes) -> RechunkStats:
        """Re-chunk documents (the caller holds the collection's writer lock), in one
        transaction with the run's counts; a document gone, or already chunked so, is left."""
        found = [d for d in map(self._chunks, sorted(set(document_ids))) if d is not None]
        stats = RechunkStats(
            len(found), sum(n for _, _, n in found), sum(len(c) for _, c, _ in found)
        )
        if not found:
            return stats
        todo = self._embedded([(doc_id, chunks) for doc_id, chunks, _ in found])
        sql_writer = indexes.sql_writer

        def write(
            conn: Connection, removed: I64, added: I64, vectors: F32, texts: Sequence[str]
        ) -> None:
            if sql_writer is not None:
                sql_writer(conn, removed, added, vectors, texts)
            add_to_report(conn, self.run_id, stats)

        results = self.store.replace_chunks(self.info.id, todo, index=write)
        done = {r.document_id for r in results}
        chunks = [c for doc_id, new in todo if doc_id in done for c in new]
        if chunks:
            indexes.apply(
                np.concatenate([r.removed for r in results]),
                np.concatenate([r.added for r in results]),
                np.stack([c.embedding for c in chunks]),
                [index_text(c.section, c.text) for c in chunks],
            )
        return stats

    def _chunks(self, doc_id: int) -> tuple[int, list[ChunkDraft], int] | None:
        """The document's new chunks (not embedded yet) and its chunk count now; ``None`` if
        it is gone or they would be the ones it has."""
        with self.store.engine.connect() as conn:
            text = conn.execute(
                select(_D.c.text).where(_D.c.id == doc_id, _D.c.collection_id == self.info.id)
            ).scalar()
            rows = conn.execute(
                select(_C.c.section, _C.c.page, _C.c.char_start, _C.c.char_end, _C.c.ocr)
                .where(_C.c.document_id == doc_id)
                .order_by(_C.c.ordinal)
            ).all()
        if text is None:
            return None
        old = [StoredChunk(str(s), p, int(a), int(b), bool(o)) for s, p, a, b, o in rows]
        assembled, chunks = self.chunker.chunk(stored_blocks(text, old))
        if assembled != text:  # the blocks assemble to the stored text, always
            raise AssertionError(f"document {doc_id}: re-chunking moved its text")
        now = [StoredChunk(c.section, c.page, c.char_start, c.char_end, c.ocr) for c in chunks]
        if not chunks or now == old:
            return None
        return doc_id, [_chunk_draft(c) for c in chunks], len(old)

    def _embedded(
        self, todo: list[tuple[int, list[ChunkDraft]]]
    ) -> list[tuple[int, list[ChunkDraft]]]:
        """The chunks with their vectors under the current model: stored ones of the same
        text, else new."""
        chunks = [c for _, new in todo for c in new]
        stored = self.store.vectors_for_hashes(
            self.info.id, {c.text_hash for c in chunks}, model_id=self.info.embedder_id
        )
        known, _ = reuse_or_embed(
            lambda texts: self.embedder().embed(texts),  # the model, only if it must embed
            stored,
            [(c.text_hash, index_text(c.section, c.text)) for c in chunks],
        )
        return [
            (doc_id, [replace(c, embedding=known[c.text_hash]) for c in new])
            for doc_id, new in todo
        ]


def _chunk_draft(c: Chunk) -> ChunkDraft:
    return ChunkDraft(
        ordinal=c.ordinal, text=c.text, text_hash=text_hash(index_text(c.section, c.text)),
        section=c.section, page=c.page, char_start=c.char_start, char_end=c.char_end,
        token_count=c.token_count, instruction_like=looks_like_instructions(c.text),
        embedding=np.empty(0, dtype=np.float32), ocr=c.ocr,
    )  # fmt: skip
