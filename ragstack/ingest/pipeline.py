"""The write path: source items -> parsed, redacted, chunked, embedded -> SQL + indexes.

Three stages overlap: a producer thread reads, parses, redacts and chunks documents; a model
thread embeds a batch of chunks (onnxruntime and torch release the GIL while they compute);
the calling thread commits the batch before it (SQL, then the indexes) meanwhile, in order.
Each commit is one SQL transaction per batch of documents, mirrored into the indexes right
after; the indexes are saved every ``index_save_interval_s`` and at the end. A kill at any
point loses at most the uncommitted batches: SQL stays consistent, and the next open of the
collection brings the indexes back in step with it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ragstack.domain import ChunkDraft, CollectionInfo, DocumentDraft, DocumentState
from ragstack.embedding import Embedder, reuse_or_embed
from ragstack.errors import InputError, RagstackError
from ragstack.indexing import CollectionIndexes
from ragstack.ingest.chunking import Chunker
from ragstack.ingest.items import (
    IngestOptions,
    IngestSummary,
    ItemError,
    ItemLike,
    Parser,
    Progress,
    Redactor,
    is_unchanged,
)
from ragstack.ingest.prepare import (
    SKIP_KINDS,
    Executor,
    Prepared,
    Preparer,
    run_here,
)
from ragstack.store import Store

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Vectors:
    """A batch's vectors by chunk text hash, filled on the model thread until ``done``."""

    done: Future[None]
    vectors: dict[str, F32]
    hashes: frozenset[str]  # what ``vectors`` holds once done


_DONE = object()


@dataclass(frozen=True)
class _AclChange:
    """An item whose content is unchanged and whose ACL or tenant is not."""

    document_id: int
    principals: frozenset[str]
    tenant: str | None


class Ingestor:
    """Runs one ingest of source items into one collection (the caller holds the writer lock)."""

    def __init__(
        self,
        store: Store,
        info: CollectionInfo,
        indexes: CollectionIndexes,
        embedder: Embedder,
        chunker: Chunker,
        parser: Parser,
        redactor: Redactor,
        options: IngestOptions,
        executor: Executor | None = None,
        shadow: Embedder | None = None,
    ) -> None:
        self.store = store
        # the model a live re-embed is moving the collection to: new chunks get its vectors
        # too, in the same transaction (``chunk_vectors``)
        self.shadow = shadow
        self.info = info
        self.indexes = indexes
        self.embedder = embedder
        self.chunker = chunker
        self.parser = parser
        self.redactor = redactor
        self.options = options
        self.preparer = Preparer(parser, redactor, chunker, options)
        self.executor: Executor = executor or run_here

    # producer side ----------------------------------------------------------------------------

    def _triage(self, item: ItemLike, prior: DocumentState | None) -> object | None:
        """What to do with an item, short of preparing it: ``None`` (prepare it), or the
        message that settles it (unchanged, an ACL change, or refused)."""
        if prior is None:
            return None
        asker = self.options.replaces_only_readable
        if asker is not None and not prior.readable_by(*asker):
            return ItemError(
                item.uri,
                "permission_denied",
                "not replaced: you may not read the document it would replace",
            )
        if not is_unchanged(prior.version, item.version, self.parser):
            return None
        principals, tenant = self.options.acl_of(item)
        if (principals, tenant) == (prior.principals, prior.tenant):
            return ("unchanged", item.uri)
        return _AclChange(prior.id, principals, tenant)

    def _produce(
        self,
        items: Iterable[ItemLike | ItemError],
        known: dict[str, DocumentState],
        out: queue.Queue[object],
        seen: set[str],
        stop: threading.Event,
    ) -> None:
        def todo() -> Iterator[tuple[ItemLike, bool]]:
            for item in items:
                if stop.is_set():
                    return
                seen.add(item.uri)
                if isinstance(item, ItemError):
                    out.put(item)
                    continue
                prior = known.get(item.uri)
                settled = self._triage(item, prior)
                if settled is not None:
                    out.put(settled)
                    continue
                yield item, prior is not None

        try:
            for prepared in self.executor(self.preparer, todo()):
                out.put(prepared)
        except BaseException as exc:  # a connector failed as a whole: stop, keep what we have
            out.put(exc)
        finally:
            out.put(_DONE)

    # consumer side ----------------------------------------------------------------------------

    def run(
        self,
        items: Iterable[ItemLike | ItemError],
        source_ids: Sequence[str],
        run_id: int,
        progress: Progress,
        total: int | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary(run_id=run_id, collection=self.info.name)
        # a document is its URI within the collection, whichever source found it first
        known = self.store.document_versions(self.info.id, self.options.namespace)
        seen: set[str] = set()
        q: queue.Queue[object] = queue.Queue(maxsize=64)
        stop = threading.Event()
        producer = threading.Thread(
            target=self._produce,
            args=(items, known, q, seen, stop),
            name="ragstack-ingest-producer",
            daemon=True,
        )
        progress.start(total)
        producer.start()
        scan_failed: BaseException | None = None
        try:
            scan_failed = self._consume(q, summary, progress)
            if scan_failed is None and self.options.delete_missing:
                self._delete_missing(known, set(source_ids), seen, summary)
        finally:
            stop.set()
            self.indexes.save()
            progress.finish()
            summary.seconds = time.perf_counter() - started
        if scan_failed is not None:
            if isinstance(scan_failed, RagstackError):
                raise scan_failed
            raise InputError(f"reading the source failed: {scan_failed}") from scan_failed
        return summary

    def _consume(
        self, q: queue.Queue[object], summary: IngestSummary, progress: Progress
    ) -> BaseException | None:
        """Drain the producer: embed and commit in batches; returns a whole-scan failure."""
        pending: list[Prepared] = []
        acl_changes: list[_AclChange] = []
        last_save = time.monotonic()
        scan_failed: BaseException | None = None
        # the batch being embedded on the model thread, committed once the next one is started
        ahead: tuple[list[Prepared], _Vectors] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="ragstack-embed") as model:

            def commit(batch: list[Prepared] | None) -> None:
                """Start embedding ``batch``, then commit the batch embedded before it."""
                nonlocal ahead
                started = None
                if batch:
                    before = ahead[1] if ahead is not None else None
                    started = (batch, self._embed_start(batch, summary, model, before))
                if ahead is not None:
                    ahead[1].done.result()
                    self._commit(ahead[0], summary, progress)
                ahead = started

            while (msg := q.get()) is not _DONE:
                if isinstance(msg, BaseException):
                    scan_failed = msg
                elif isinstance(msg, _AclChange):
                    acl_changes.append(msg)
                elif isinstance(msg, Prepared):
                    pending.append(msg)
                else:
                    self._settled(msg, summary, progress)
                idle = q.empty()
                if acl_changes and (idle or len(acl_changes) >= 500):
                    self._change_acls(acl_changes, summary, progress)
                    acl_changes = []
                if pending and (
                    idle or sum(len(p.chunks) for p in pending) >= self.options.batch_chunks
                ):
                    commit(pending)
                    pending = []
                if time.monotonic() - last_save >= self.options.save_interval_s:
                    self.indexes.save()
                    last_save = time.monotonic()
            if acl_changes:
                self._change_acls(acl_changes, summary, progress)
            commit(pending or None)
            commit(None)
        return scan_failed

    def _settled(self, msg: object, summary: IngestSummary, progress: Progress) -> None:
        """An item the producer settled without preparing it: a problem, or unchanged."""
        if isinstance(msg, ItemError):
            self._record_problem(summary, msg)
        else:
            summary.unchanged += 1
        progress.advance(1, 0)

    def _change_acls(
        self, changes: list[_AclChange], summary: IngestSummary, progress: Progress
    ) -> None:
        """New ACLs for unchanged content, one transaction: no parsing, no embedding."""
        self.store.set_acls(
            self.info.id, [(c.document_id, c.principals, c.tenant) for c in changes]
        )
        summary.acl_updated += len(changes)
        progress.advance(len(changes), 0)

    def _delete_missing(
        self,
        known: dict[str, DocumentState],
        sources: set[str],
        seen: set[str],
        summary: IngestSummary,
    ) -> None:
        """Documents these sources gave before and no longer have leave SQL and every index."""
        gone = [d.id for uri, d in known.items() if d.source in sources and uri not in seen]
        if gone:
            removed = self.store.delete_documents(self.info.id, gone, index=self.indexes.sql_writer)
            self.indexes.apply(
                removed, np.empty(0, np.int64), np.empty((0, self.info.dim), np.float32), []
            )
            summary.deleted = len(gone)

    def _record_problem(self, summary: IngestSummary, err: ItemError) -> None:
        summary.problems.append(err)
        if err.kind in SKIP_KINDS:
            summary.skipped += 1
        else:
            summary.failed += 1

    def _embed_start(
        self,
        batch: list[Prepared],
        summary: IngestSummary,
        model: ThreadPoolExecutor,
        before: _Vectors | None,
    ) -> _Vectors:
        """Reuse the vectors SQL has for the batch's chunk texts (looked up on this thread:
        the store is not shared) or that ``before`` (the previous batch's, not committed yet)
        gets, and embed the rest on the ``model`` thread, which runs one batch after another:
        what is done when every chunk of the batch has its vector."""
        done = [p for p in batch if len(p.vectors) == len(p.hashes)]  # embedded by a worker
        summary.chunks_embedded += sum(len(p.hashes) for p in done)
        batch = [p for p in batch if len(p.vectors) != len(p.hashes)]
        known: dict[str, F32] = {}
        todo: dict[str, str] = {}
        if batch:
            hashes = {h for p in batch for h in p.hashes}
            stored = self.store.vectors_for_hashes(
                self.info.id, hashes, model_id=self.embedder.model_id
            )
            known = {h: np.frombuffer(v, dtype=np.float32) for h, v in stored.items()}
            for p in batch:
                for h, t in zip(p.hashes, p.embed_texts, strict=True):
                    if h not in known:
                        todo.setdefault(h, t)
            fresh = sum(1 for h in todo if before is None or h not in before.hashes)
            summary.chunks_embedded += fresh
            summary.chunks_reused += sum(len(p.hashes) for p in batch) - fresh

        def run() -> None:  # after ``before``'s: its vectors are all there
            new = {h: t for h, t in todo.items() if before is None or h not in before.vectors}
            if before is not None:
                known.update((h, before.vectors[h]) for h in todo if h in before.vectors)
            if new:
                known.update(zip(new, self.embedder.embed(list(new.values())), strict=True))
            for p in batch:
                p.vectors = [known[h] for h in p.hashes]

        holds = frozenset(known) | frozenset(todo)  # before ``run`` starts to add to ``known``
        return _Vectors(model.submit(run), known, holds)

    def _shadow_vectors(self, batch: list[Prepared]) -> tuple[str, list[F32]] | None:
        """The batch's chunks under the re-embed's model (reused by text hash), in order."""
        if self.shadow is None:
            return None
        from ragstack.store.shadow import ShadowStore

        model_id = self.shadow.model_id
        hashes = [h for p in batch for h in p.hashes]
        known, _ = reuse_or_embed(
            self.shadow.embed,
            ShadowStore(self.store).reusable(self.info.id, model_id, hashes),
            [(h, t) for p in batch for h, t in zip(p.hashes, p.embed_texts, strict=True)],
        )
        return model_id, [known[h] for h in hashes]

    def _commit(self, batch: list[Prepared], summary: IngestSummary, progress: Progress) -> None:
        """Write an embedded batch: one SQL transaction, then the indexes."""
        drafts = []
        for p in batch:
            chunks = [
                ChunkDraft(
                    ordinal=o,
                    text=t,
                    text_hash=h,
                    section=s,
                    page=pg,
                    char_start=a,
                    char_end=b,
                    token_count=n,
                    instruction_like=flag,
                    embedding=np.asarray(v, dtype=np.float32),
                    ocr=ocr,
                )
                for (o, t, s, pg, a, b, n, flag, ocr), h, v in zip(
                    p.chunks, p.hashes, p.vectors, strict=True
                )
            ]
            drafts.append(DocumentDraft(**p.draft_fields, chunks=chunks))  # type: ignore[arg-type]
        results = self.store.write_documents(
            self.info.id, drafts, index=self.indexes.sql_writer, shadow=self._shadow_vectors(batch)
        )
        if not self.indexes.transactional:  # index files follow the commit
            removed = np.concatenate([r.removed for r in results])
            added = np.concatenate([r.added for r in results])
            vectors = np.stack([c.embedding for d in drafts for c in d.chunks])
            texts = [t for p in batch for t in p.embed_texts]
            self.indexes.apply(removed, added, vectors, texts)
        for p in batch:
            if p.is_update:
                summary.updated += 1
            else:
                summary.ingested += 1
            summary.chunks += len(p.chunks)
            summary.ocr_pages += p.ocr_pages
            summary.ocr_seconds += p.ocr_seconds
        progress.advance(len(batch), sum(len(p.chunks) for p in batch))
