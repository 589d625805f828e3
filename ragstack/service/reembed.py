"""Live embedder migration: move a collection to another embedding model while it serves.

``reembed`` first re-chunks the documents whose chunks the new model's window would cut
(``ragstack.rechunking``; holding the writer lock in turns, and recording the collection's chunk
bound so that ingests chunk within it). Then it builds the shadow vectors and shadow dense index
(``ragstack.reembedding``) with no lock writers wait on, so searches, answers and ingests go on;
an ingest meanwhile embeds its new chunks with both models (``IngestMixin``). Then, holding the
writer lock, it re-chunks (if it must) and embeds what was ingested during the pass, checks the
shadow (index check and sampled recall), and switches the collection in one transaction
(``ShadowStore.switch``): embedder, dimension, dense index, generations and answer cache
together. A search reads the collection once and uses that snapshot's model and index
throughout, so each response is wholly old or wholly new. After a grace period the old dense
index and the copied shadow rows go.

One re-embed per collection at a time (its own lock: a file lock, or a PostgreSQL advisory
lock, released if the process dies); a killed one resumes where SQL says it stopped when
``reembed`` is run again with the same model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TypeVar

from ragstack.domain import CollectionInfo
from ragstack.errors import ConfigError, InputError, NotFoundError, UnavailableError
from ragstack.indexing import CollectionIndexes, collection_lock, drop_dense
from ragstack.rechunking import CHUNK_SETTING, Rechunker, RechunkStats, collection_chunker
from ragstack.reembedding import Progress, Reembedder
from ragstack.service.collections import CollectionsMixin
from ragstack.store.shadow import ReembedRun, ShadowStore

log = logging.getLogger("ragstack.reembed")
T = TypeVar("T")


class ReembedMixin(CollectionsMixin):
    def reembed_status(self, collection: str) -> ReembedRun | None:
        """The collection's latest re-embed run, if it ever had one."""
        info = self.store.get_collection(collection)
        return ShadowStore(self.store).latest(info.id)

    def reembed(
        self,
        collection: str,
        embedder: str,
        *,
        model_path: Path | None = None,
        progress: Progress | None = None,
        on_start: Callable[[ReembedRun], None] | None = None,
        writer_wait_s: float = 600.0,
    ) -> ReembedRun:
        """Move ``collection`` to ``embedder`` (a model id, or a backend name as
        ``RAGSTACK_EMBEDDER`` takes it, with ``model_path`` for a local model), live; resumes
        a killed run to the same model. Returns the finished run."""
        info = self.store.get_collection(collection)
        target = self.c.model_id_for(embedder, model_path)
        shadow = ShadowStore(self.store)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root, kind="reembed"):
            found = shadow.active(info.id)
            if found is not None and found.status == "switched":
                self._drop_old(found, grace_s=0.0)  # a run killed after its switch
                if found.model_id == target:
                    return shadow.get(found.id)
                info = self.store.get_collection(collection)
            if info.embedder_id == target:
                raise InputError(f"collection {collection!r} already uses {target}")
            try:
                model = self.c.models.get(target, model_path)
            except ConfigError as exc:  # the model the caller named cannot run here
                raise InputError(f"cannot move {collection!r} to {target}: {exc}") from exc
            try:
                old_window = self._model(info).max_tokens
            except ConfigError:  # not needed unless documents must be re-chunked
                old_window = 0
            run = shadow.begin(
                collection_id=info.id, from_model=info.embedder_id, from_dense=info.dense_name,
                model_id=target, model_path=str(model_path) if model_path else None,
                dim=model.embedder.dim, owner=_owner(),
            )  # fmt: skip
            if on_start is not None:
                on_start(run)
            try:
                settings = self.settings
                builder = self._niced(
                    lambda: Reembedder(
                        self.store,
                        info,
                        root,
                        run,
                        model,
                        batch=settings.reembed_batch,
                        save_interval_s=settings.index_save_interval_s,
                        progress=progress,
                        old_window=old_window,
                    )
                )
                rechunker = Rechunker(
                    self.store,
                    info,
                    lambda: self._model(info).embedder,
                    collection_chunker(self.store, info.id, model.chunker),
                    run.id,
                )
                self._niced(builder.reconcile)
                with _RechunkWrites(self, info, root, rechunker, wait_s=writer_wait_s) as write:
                    self._niced(lambda: builder.rechunk(write))
                self._niced(builder.build)
                with self._writer(info, root, writer_wait_s, builder.build):
                    # what was ingested during the pass: re-chunked if it must be, embedded
                    with _RechunkWrites(self, info, root, rechunker, held=True) as write:
                        builder.rechunk(write)
                    builder.build()
                    builder.reconcile()  # and what was deleted
                    builder.save()
                    rechunked = shadow.get(run.id).report.get("rechunk")
                    report = {**builder.check(), "embedded": builder.stats.embedded,
                              "reused": builder.stats.reused,
                              "over_window": builder.stats.over_window,
                              "rechunk": rechunked or RechunkStats().to_dict()}  # fmt: skip
                    if not report["ok"]:
                        shadow.progress(run.id, report=report)
                        self._abandon(run, "failed", "the shadow index failed its check")
                        return shadow.get(run.id)
                    shadow.switch(run, report)
            except BaseException as exc:
                # resumable: the run stays running, its vectors and index stay
                shadow.progress(run.id, message=f"stopped: {type(exc).__name__}: {exc}"[:500])
                raise
            self._drop_old(shadow.get(run.id), grace_s=self.settings.reembed_grace_s)
            return shadow.get(run.id)

    def start_reembed(
        self, collection: str, embedder: str, *, model_path: Path | None = None
    ) -> ReembedRun:
        """``reembed`` on a background thread; returns its run once it has begun (or the
        error that stopped it from beginning)."""
        started: list[ReembedRun] = []
        failed: list[BaseException] = []
        ready = threading.Event()

        def begun(run: ReembedRun) -> None:
            started.append(run)
            ready.set()

        def work() -> None:
            try:
                self.reembed(collection, embedder, model_path=model_path, on_start=begun)
            except BaseException as exc:  # reported to the caller, or on the run's row
                failed.append(exc)
                log.warning("re-embed of %s stopped: %s", collection, exc)
            finally:
                ready.set()

        threading.Thread(target=work, name=f"ragstack-reembed-{collection}", daemon=True).start()
        ready.wait()
        if started:
            return started[0]
        raise failed[0]

    def cancel_reembed(self, collection: str) -> ReembedRun:
        """Stop a collection's re-embed that is not running now (killed, or failed), dropping
        its shadow vectors and index; one that has switched is finished instead."""
        info = self.store.get_collection(collection)
        shadow = ShadowStore(self.store)
        with collection_lock(self.store, info, self.collection_dir(info), kind="reembed"):
            run = shadow.active(info.id)
            if run is None:
                raise NotFoundError(f"collection {collection!r} has no re-embed to cancel")
            if run.status == "switched":
                self._drop_old(run, grace_s=0.0)
            else:
                self._abandon(run, "cancelled", "cancelled")
            return shadow.get(run.id)

    # -- steps --------------------------------------------------------------------------------

    def _abandon(self, run: ReembedRun, status: str, message: str) -> None:
        info = self.store.get_collection_by_id(run.collection_id)
        drop_dense(self.store, info, self.collection_dir(info), run.dense_name)
        shadow = ShadowStore(self.store)
        shadow.drop_vectors(run.collection_id, run.model_id)
        shadow.finish(run.id, status, message)

    def _drop_old(self, run: ReembedRun, *, grace_s: float) -> None:
        """After the switch: the old dense index and the shadow rows (now in ``chunks``)."""
        time.sleep(grace_s)  # requests that read the collection before the switch finish
        info = self.store.get_collection_by_id(run.collection_id)
        if run.from_dense != info.dense_name:
            drop_dense(self.store, info, self.collection_dir(info), run.from_dense)
        shadow = ShadowStore(self.store)
        shadow.drop_vectors(run.collection_id, run.model_id)
        shadow.finish(run.id, "completed")

    def _writer(
        self, info: CollectionInfo, root: Path, wait_s: float, meanwhile: Callable[[], object]
    ) -> ExitStack:
        """The collection's writer lock, waited for (an ingest holding it ends; ``meanwhile``
        runs between tries: the shadow keeps up with it)."""
        deadline = time.monotonic() + wait_s
        while True:
            stack = ExitStack()
            try:
                stack.enter_context(collection_lock(self.store, info, root))
                return stack
            except UnavailableError:
                if time.monotonic() > deadline:
                    raise
                self._niced(meanwhile)
                time.sleep(0.5)

    def _niced(self, fn: Callable[[], T]) -> T:
        """``fn`` on a thread of its own at ``reembed_nice`` (threads it starts, such as a
        model's, inherit it): the re-embed yields the CPU to requests."""
        nice = self.settings.reembed_nice
        if nice <= 0 or not hasattr(os, "setpriority"):
            return fn()
        out: list[T] = []
        failed: list[BaseException] = []

        def run() -> None:
            with suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            try:
                out.append(fn())
            except BaseException as exc:
                failed.append(exc)

        worker = threading.Thread(target=run, name="ragstack-reembed-work", daemon=True)
        worker.start()
        worker.join()
        if failed:
            raise failed[0]
        return out[0]


class _RechunkWrites:
    """A re-embed's re-chunk writes (``Rechunker.rechunk``), under the collection's writer
    lock: taken when there is a first document to write (``held``: the caller has it), and
    let go with the indexes saved every ``index_save_interval_s`` so that ingests waiting get
    their turn. Taking it first records the collection's chunk bound (``chunker_for``), so an
    ingest after it chunks within the bound."""

    def __init__(
        self,
        svc: ReembedMixin,
        info: CollectionInfo,
        root: Path,
        rechunker: Rechunker,
        *,
        held: bool = False,
        wait_s: float = 600.0,
    ) -> None:
        self.svc, self.info, self.root, self.rechunker = svc, info, root, rechunker
        self.held = held
        self.wait_s = wait_s
        self.lock: ExitStack | None = None
        self.indexes: CollectionIndexes | None = None
        self.since = 0.0

    def __enter__(self) -> _RechunkWrites:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __call__(self, document_ids: Sequence[int]) -> None:
        if self.indexes is None:
            if not self.held:
                self.lock = self.svc._writer(self.info, self.root, self.wait_s, lambda: None)
            bound = str(self.rechunker.chunker.max_tokens)
            if self.svc.store.get_setting(self.info.id, CHUNK_SETTING) != bound:
                self.svc.store.set_setting(self.info.id, CHUNK_SETTING, bound)
            self.indexes, _ = self.svc.open_indexes(self.info)
            self.since = time.monotonic()
        self.rechunker.rechunk(document_ids, self.indexes)
        if (
            not self.held
            and time.monotonic() - self.since >= self.svc.settings.index_save_interval_s
        ):
            self.close()

    def close(self) -> None:
        try:
            if self.indexes is not None:
                self.indexes.save()
        finally:
            self.indexes = None
            if self.lock is not None:
                self.lock.close()
                self.lock = None


def _owner() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
