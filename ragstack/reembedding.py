"""Building a collection's shadow vectors and shadow dense index for a live re-embed.

``Reembedder`` walks the collection's chunks in id order, embeds those without a shadow vector
under the target model (reusing any shadow vector of the same text), and commits each batch's
vectors with the run's progress in one transaction; the shadow dense index follows (inside
that transaction in PostgreSQL; as files saved every few seconds and reconciled with the SQL
rows on every open otherwise). So a kill at any point costs one batch: the next run reads from
SQL what is done. Nothing here touches what searches use; the switch is ``ShadowStore.switch``.

A chunk is reused as it is when the new model sees as much of it as the old one did: when its
text (with its section context) fits the new model's window in that model's tokens, or the
new model would see no smaller share of it than the old one saw within its own window. Every
MiniLM variant ragstack ships (torch, fp32 and int8 ONNX, the adapted ones) shares one
tokenizer and a 256-token window, so among them every chunk is reused. For another model,
``rechunk`` first finds the documents with a chunk that does not fit (before the pass, and
again, for what was ingested meanwhile, under the writer lock before the switch) and has them
re-chunked for the new model (``ragstack.rechunking``: an update of each document's chunks
under the current model, through the caller's ``write``); the pass over the chunks leaves any
chunk that does not fit to that step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexes import CorruptIndexError, IdFilter, VectorIndex, open_vector_index
from ragstack.domain import CollectionInfo
from ragstack.embedders import Model
from ragstack.embedding import reuse_or_embed
from ragstack.errors import ConflictError
from ragstack.indexing import in_database, new_vector_index
from ragstack.store import Store, index_text
from ragstack.store.shadow import ChunkText, ReembedRun, ShadowIndexWriter, ShadowStore

log = logging.getLogger(__name__)
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
Progress = Callable[[int, int], None]  # (chunks with a shadow vector, chunks)
RechunkWriter = Callable[[Sequence[int]], None]  # re-chunks these documents for the new model
MIN_RECALL = 0.9  # of the shadow ANN index against exact search over the shadow vectors


@dataclass
class BuildStats:
    embedded: int = 0
    reused: int = 0
    written: int = 0
    batches: int = 0
    over_window: int = 0  # chunks embedded though the new model sees less of them (see rechunk)


class Reembedder:
    def __init__(
        self,
        store: Store,
        info: CollectionInfo,
        root: Path,
        run: ReembedRun,
        model: Model,
        *,
        batch: int = 256,
        save_interval_s: float = 30.0,
        progress: Progress | None = None,
        old_window: int = 0,
    ) -> None:
        self.store = store
        self.info = info
        self.root = root
        self.run = run
        self.model = model
        self.batch = batch
        self.save_interval_s = save_interval_s
        self.progress = progress or (lambda _done, _total: None)
        self.shadow = ShadowStore(store)
        self.stats = BuildStats()
        self.old_window = old_window  # the current model's, in its tokens (0: unknown)
        # chunks that do not fit and that re-chunking left as they were (nothing to gain)
        self.settled: set[int] = set()
        self.rechunked_to = 0  # the last chunk id ``rechunk`` has looked at
        self.shadow_info = replace(
            info, embedder_id=run.model_id, dim=run.dim, dense_name=run.dense_name
        )
        self.dense = self._open_index()
        self._last_save = time.monotonic()

    # -- the shadow index ---------------------------------------------------------------------

    @property
    def transactional(self) -> bool:
        return in_database(self.store)

    def _open_index(self) -> VectorIndex:
        info = self.shadow_info
        if self.transactional:
            from ragstack.store.pgindex import (
                PgBm25Index,
                PgVectorIndex,
                create_collection_tables,
            )

            pg = PgVectorIndex(
                self.store.engine, info.id, info.dim, info.vector_backend, info.dense_name
            )
            create_collection_tables(self.store.engine, pg, PgBm25Index(self.store.engine, info.id))
            return pg
        try:
            return open_vector_index(self.root / info.dense_name, dim=info.dim, metric="cosine")
        except CorruptIndexError:
            return new_vector_index(info.vector_backend, info.dim)

    def _index_writer(self) -> ShadowIndexWriter | None:
        if not self.transactional:
            return None
        dense: Any = self.dense
        return lambda conn, ids, vectors: dense.add_in(conn, ids, vectors)

    def reconcile(self) -> tuple[int, int]:
        """The shadow index brought in step with the shadow vectors SQL holds (a kill lost
        unsaved additions; ingest wrote vectors it never indexed; chunks were deleted):
        ``(added, removed)``."""
        sql_ids = self.shadow.ids(self.info.id, self.run.model_id)
        have = self.dense.ids()
        missing = np.setdiff1d(sql_ids, have, assume_unique=True)
        extra = np.setdiff1d(have, sql_ids, assume_unique=True)
        removed = self.dense.remove(extra) if extra.size else 0
        for start in range(0, missing.size, 5000):
            ids, vectors = self.shadow.payloads(
                self.run.model_id, missing[start : start + 5000].tolist(), self.run.dim
            )
            self.dense.add(ids, vectors)
        return int(missing.size), int(removed)

    def save(self) -> None:
        self.dense.save(self.root / self.run.dense_name)
        self._last_save = time.monotonic()

    # -- building -----------------------------------------------------------------------------

    def build(self) -> BuildStats:
        """One pass over the chunks without a shadow vector (those ingested meanwhile
        included, up to the end of the pass), then the index saved."""
        total, done = self.shadow.counts(self.info.id, self.run.model_id)
        self.shadow.progress(self.run.id, total=total, done=done)
        self.progress(done, total)
        after = 0
        while rows := self.shadow.missing(
            self.info.id, self.run.model_id, after=after, limit=self.batch
        ):
            done += self._embed(rows)
            after = rows[-1][0]
            total = max(total, done)
            self.progress(done, total)
            if not self.transactional and (
                time.monotonic() - self._last_save >= self.save_interval_s
            ):
                self.save()
        self.save()
        return self.stats

    def _embed(self, rows: list[ChunkText]) -> int:
        over = {r.id for r, o in zip(rows, self._over(rows), strict=True) if o}
        self.stats.over_window += len(over & self.settled)
        rows = [r for r in rows if r.id not in over or r.id in self.settled]
        if not rows:
            return 0  # left for ``rechunk``
        ids = np.array([r.id for r in rows], dtype=np.int64)
        hashes = [r.text_hash for r in rows]
        texts = [index_text(r.section, r.text) for r in rows]
        known, embedded = reuse_or_embed(
            self.model.embedder.embed,
            self.shadow.reusable(self.info.id, self.run.model_id, hashes),
            zip(hashes, texts, strict=True),
        )
        vectors = np.stack([known[h] for h in hashes]).astype(np.float32, copy=False)
        if vectors.shape[1] != self.run.dim:
            raise ConflictError(
                f"{self.run.model_id} gave vectors of dim {vectors.shape[1]}, not {self.run.dim}"
            )
        written = self.shadow.write(
            self.run.id, self.info.id, self.run.model_id, ids, hashes, vectors,
            embedded=embedded, reused=len(rows) - embedded, index=self._index_writer(),
        )  # fmt: skip
        if not self.transactional and written.size:
            self.dense.add(written, vectors[np.isin(ids, written)])
        self.stats.embedded += embedded
        self.stats.reused += len(rows) - embedded
        self.stats.written += int(written.size)
        self.stats.batches += 1
        return int(written.size)

    def _over(self, rows: Sequence[ChunkText]) -> list[bool]:
        """Which chunks the new model would see less of than the old one did: longer than
        its window in its tokens (special tokens included), and a smaller share of them in
        it than of the old model's tokens in the old window."""
        counter = self.model.chunker.counter
        special = int(getattr(counter, "special_tokens", 0))
        window = self.model.max_tokens
        counts = counter.count([index_text(r.section, r.text) for r in rows])
        out = []
        for r, n in zip(rows, counts, strict=True):
            new, old = n + special, r.token_count
            seen_before = min(old, self.old_window or old)  # of ``old`` tokens
            out.append(new > window and window * old < new * seen_before)
        return out

    # -- re-chunking --------------------------------------------------------------------------

    def rechunk(self, write: RechunkWriter) -> None:
        """One pass over the chunks past the last pass (all of them, the first time): the
        documents of those that do not fit the new model are handed to ``write`` to be
        re-chunked, a batch at a time (their new chunks come at the end of the pass, and
        fit). Chunks an ingest wrote meanwhile count, shadow vector or not: the pass under
        the writer lock sees them all. Idempotent: a rerun finds nothing to do for the
        documents already done."""
        tried: set[int] = set()
        while rows := self.shadow.chunks(self.info.id, after=self.rechunked_to, limit=self.batch):
            self.rechunked_to = rows[-1].id
            over = [r for r, o in zip(rows, self._over(rows), strict=True) if o]
            over = [r for r in over if r.id not in self.settled]
            docs = sorted({r.document_id for r in over if r.document_id not in tried})
            if docs:
                write(docs)
                tried.update(docs)
                total, done = self.shadow.counts(self.info.id, self.run.model_id)
                self.progress(done, total)
            # still there: re-chunking could not make them fit (or made them so)
            self.settled.update(r.id for r in over)

    # -- the check ----------------------------------------------------------------------------

    def check(self, *, sample: int = 200, recall_sample: int = 50, k: int = 10) -> dict[str, Any]:
        """``index check`` on the shadow (its ids are the collection's chunk ids; a sample
        of stored vectors finds itself first) and its recall@k against exact search over
        the shadow vectors, for a sample of them as queries."""
        cid, model, dim = self.info.id, self.run.model_id, self.run.dim
        sql_ids = self.store.live_chunk_ids(cid)
        have = self.dense.ids()
        missing = np.setdiff1d(sql_ids, have, assume_unique=True)
        extra = np.setdiff1d(have, sql_ids, assume_unique=True)
        rng = np.random.default_rng(cid)
        picked = (
            rng.choice(sql_ids, size=min(sample, sql_ids.size), replace=False)
            if sql_ids.size
            else sql_ids
        )
        mismatches: list[int] = []
        if picked.size and not missing.size:
            ids, vectors = self.shadow.payloads(model, picked.tolist(), dim)
            for chunk_id, vec in zip(ids.tolist(), vectors, strict=True):
                res = self.dense.search(vec[None, :], 1, IdFilter([chunk_id]))
                if int(res.ids[0, 0]) != chunk_id or float(res.scores[0, 0]) < 0.999:
                    mismatches.append(chunk_id)
        recall = self._recall(sql_ids, rng, recall_sample, k) if sql_ids.size else None
        ok = (
            not missing.size
            and not extra.size
            and not mismatches
            and (recall is None or recall >= MIN_RECALL)
        )
        return {
            "ok": bool(ok),
            "sql_chunks": int(sql_ids.size),
            "dense": int(have.size),
            "missing_dense": missing.tolist()[:20],
            "extra_dense": extra.tolist()[:20],
            "vector_mismatches": mismatches[:20],
            "sampled": int(picked.size),
            "recall_at_10": recall,
            "min_recall": MIN_RECALL,
        }

    def _recall(self, sql_ids: I64, rng: np.random.Generator, sample: int, k: int) -> float:
        model, dim = self.run.model_id, self.run.dim
        chosen = rng.choice(sql_ids, size=min(sample, sql_ids.size), replace=False)
        _, queries = self.shadow.payloads(model, chosen.tolist(), dim)
        k = min(k, int(sql_ids.size))
        best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        best_i = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, sql_ids.size, 20000):  # exact top-k, streamed over the vectors
            ids, vectors = self.shadow.payloads(model, sql_ids[start : start + 20000].tolist(), dim)
            scores = np.concatenate([best_s, queries @ vectors.T], axis=1)
            all_ids = np.concatenate([best_i, np.broadcast_to(ids, (len(queries), ids.size))], 1)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(scores, top, 1)
            best_i = np.take_along_axis(all_ids, top, 1)
        found = self.dense.search(queries, k)
        hits = sum(
            len({int(i) for i in best_i[row]} & {cid for cid, _ in found.hits(row)})
            for row in range(len(queries))
        )
        return round(hits / (len(queries) * k), 4)
