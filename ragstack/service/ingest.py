"""Ingest: sources -> SQL and every index of a collection."""

from __future__ import annotations

from collections.abc import Iterable

from connectors import FetchRefusedError
from ragstack.domain import CollectionInfo, check_principal
from ragstack.embedders import Model
from ragstack.errors import InputError, NotFoundError
from ragstack.indexing import collection_lock
from ragstack.ingest.chunking import Chunker
from ragstack.ingest.items import (
    IngestOptions,
    IngestSummary,
    ItemError,
    ItemLike,
    NoProgress,
    Progress,
    default_principals,
)
from ragstack.ingest.pipeline import Ingestor
from ragstack.parsing.ocr import OCR_MODES, OcrMode
from ragstack.rechunking import bounded, chunk_bound
from ragstack.service.collections import CollectionsMixin
from ragstack.service.types import IngestRequest

OCR_SETTING = "ocr"  # collection_settings key: the collection's OCR mode


class IngestMixin(CollectionsMixin):
    def check_url(self, url: str, *, trusted: bool) -> None:
        """Refuse now, without any lookup, a URL the fetch policy forbids on its face (another
        scheme, a forbidden literal address, a localhost name); the rest is checked when the
        ingest fetches it."""
        try:
            self.c.fetch_policy_for(trusted).check_url(url)
        except FetchRefusedError as exc:
            raise InputError(exc.reason) from None

    def ingest(
        self, request: IngestRequest, *, principal: str, progress: Progress | None = None
    ) -> IngestSummary:
        check_principal(principal)
        for p in request.allow:
            check_principal(p)
        if not request.sources:
            raise InputError("nothing to ingest: give at least one path or URL")
        if request.executor not in ("local", "ray"):
            raise InputError(f"executor must be local or ray, not {request.executor!r}")
        try:
            info = self.store.get_collection(request.collection)
        except NotFoundError:
            info = self.create_collection(
                request.collection,
                owner=principal,
                public=request.public,
                allow=request.allow,
                tenant=request.tenant or None,
                pii_mode=request.pii_mode,
                pii_ner=request.pii_ner,
            )
        model = self._model(info)
        ocr = self.ocr_mode(info, request.ocr)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            self.store.mark_interrupted_runs(info.id)
            indexes, recovered = self.open_indexes(info)
            fetching = self.c.fetch_policy_for(request.trusted)
            resolved = [
                self.c.resolve_source(s, self.settings.max_file_bytes, fetching)
                for s in request.sources
            ]
            run_id = self.store.start_run(info.id, principal, [r.source_id for r in resolved])
            principals = (
                default_principals(
                    principal, public=request.public, allow=request.allow, collection_default=()
                )
                if (request.public or request.allow)
                else frozenset(info.default_acl)
            )
            salt = self.store.pii_salt(info.name)
            options = IngestOptions(
                principals=principals,
                tenant=request.tenant or info.tenant or None,
                max_file_bytes=self.settings.max_file_bytes,
                batch_chunks=self.commit_batch_chunks(),
                save_interval_s=self.settings.index_save_interval_s,
                delete_missing=request.delete_missing,
                namespace=request.namespace,
                replaces_only_readable=request.replaces_only_readable,
                ocr_mode=ocr,
                prepare_workers=self.settings.ocr_workers if ocr != "off" else 1,
            )
            shadow = self._shadow_model(info)
            chunker = self.chunker_for(info, model, shadow)  # under the lock: see chunker_for
            executor = None
            if request.executor == "ray":
                from ragstack.ingest.ray_executor import RayExecutor

                bound = max(chunker.max_tokens, 32)
                settings = self.settings.model_copy(
                    update={"chunk_max_tokens": bound,
                            "chunk_overlap_tokens": min(chunker.overlap, bound // 2)}
                )  # fmt: skip
                executor = RayExecutor(settings, info, salt, options, address=request.ray_address)
            ingestor = Ingestor(
                self.store,
                info,
                indexes,
                model.embedder,
                chunker,
                self.c.parser.with_ocr_mode(ocr),
                self.c.redactor_for(info, salt),
                options,
                executor,
                shadow=shadow.embedder if shadow is not None else None,
            )
            total = (
                sum(r.total for r in resolved if r.total is not None)
                if all(r.total is not None for r in resolved)
                else None
            )
            items = _chain(r.items for r in resolved)
            try:
                summary = ingestor.run(
                    items, [r.source_id for r in resolved], run_id, progress or NoProgress(), total
                )
            except BaseException:
                self.store.finish_run(run_id, "failed", {})
                raise
            summary.recovered = {
                "dense_added": recovered.dense_added,
                "dense_removed": recovered.dense_removed,
                "lexical_added": recovered.lexical_added,
                "lexical_removed": recovered.lexical_removed,
            }
            self.store.record_errors(
                run_id, info.id, [(p.uri, p.kind, p.reason) for p in summary.problems]
            )
            self.store.finish_run(run_id, "completed", summary.counts())
        return summary

    def commit_batch_chunks(self) -> int:
        """Chunks an ingest embeds and commits at a time. The model sees them sorted by
        length, in batches of ``embed_batch_size``: 256 chunks leave ~3% of padding in
        batches of 16 where 64 left ~11% (SciFact's chunks)."""
        return max(self.settings.embed_batch_size * 16, 256)

    def _shadow_model(self, info: CollectionInfo) -> Model | None:
        """The model a live re-embed is moving the collection to, if one is under way: an
        ingest writes both models' vectors (a run killed midway counts: it resumes)."""
        from pathlib import Path

        from ragstack.store.shadow import ShadowStore

        run = ShadowStore(self.store).active(info.id)
        if run is None or run.status != "running":
            return None
        path = Path(run.model_path) if run.model_path else None
        return self.c.models.get(run.model_id, path)

    def chunker_for(self, info: CollectionInfo, model: Model, shadow: Model | None) -> Chunker:
        """What an ingest chunks the collection's documents with: its model's chunker,
        bounded by the collection's own chunk size when a live re-embed re-chunked it for a
        model with a smaller window (``ragstack.rechunking``); while that re-embed runs, in
        the new model's tokens, so new chunks fit both models. Read under the writer lock:
        the re-embed sets the bound holding it, so an ingest never chunks with a stale one."""
        bound = chunk_bound(self.store, info.id)
        if bound is None:
            return model.chunker
        return bounded((shadow if shadow is not None else model).chunker, bound)

    def ocr_mode(self, info: CollectionInfo, requested: str | None = None) -> OcrMode:
        """The collection's OCR mode: ``requested`` (then kept for its next ingests), else
        the one it keeps, else ``RAGSTACK_OCR``. A change re-parses the documents it affects
        (their version carries the OCR settings; see ``ragstack.ingest.items``)."""
        if requested is not None:
            if requested not in OCR_MODES:
                raise InputError(f"OCR mode must be auto, always or off, not {requested!r}")
            mode: OcrMode = requested
            if self.store.get_setting(info.id, OCR_SETTING) != mode:
                self.store.set_setting(info.id, OCR_SETTING, mode)
            return mode
        stored = self.store.get_setting(info.id, OCR_SETTING)
        return stored if stored in OCR_MODES else self.settings.ocr


def _chain(parts: Iterable[Iterable[ItemLike | ItemError]]) -> Iterable[ItemLike | ItemError]:
    for part in parts:
        yield from part
