"""Collections: create, list, see, delete, figures, health and index checks."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragstack.domain import PUBLIC, CollectionInfo, check_principal
from ragstack.errors import InputError, NotFoundError
from ragstack.indexing import (
    CheckReport,
    CollectionIndexes,
    ReconcileReport,
    collection_lock,
    drop_indexes,
    index_bytes,
)
from ragstack.ingest.items import default_principals
from ragstack.ingest.uploads import kept_dir
from ragstack.redaction import MODES as PII_MODES
from ragstack.service.core import ServiceCore


class CollectionsMixin(ServiceCore):
    def create_collection(
        self,
        name: str,
        *,
        owner: str,
        public: bool = False,
        allow: Sequence[str] = (),
        tenant: str | None = None,
        vector_backend: str | None = None,
        pii_mode: str | None = None,
        pii_ner: bool | None = None,
    ) -> CollectionInfo:
        _check_name(name)
        check_principal(owner)
        for p in allow:
            check_principal(p)
        if pii_mode is not None and pii_mode not in PII_MODES:
            raise InputError(f"unknown PII mode {pii_mode!r}: use one of {', '.join(PII_MODES)}")
        embedder = self.c.models.default().embedder
        return self.store.create_collection(
            name=name,
            owner=owner,
            tenant=tenant or None,  # "" (tenant-less callers) is no tenant
            embedder_id=embedder.model_id,
            dim=embedder.dim,
            vector_backend=vector_backend or self.settings.vector_backend,
            pii_mode=pii_mode or self.settings.pii_mode,
            pii_ner=self.settings.pii_ner if pii_ner is None else pii_ner,
            default_acl=sorted(
                default_principals(owner, public=public, allow=allow, collection_default=())
            ),
        )

    def collections(self) -> list[CollectionInfo]:
        return self.store.list_collections()

    def collection(self, name: str) -> CollectionInfo:
        return self.store.get_collection(name)

    def collection_figures(self, tenant: str | None = None) -> dict[str, dict[str, Any]]:
        """Operator figures of every collection, or (``tenant``) of that tenant's collections
        only (for admins and metrics only: they span every document): see ``_figures``."""
        return {
            info.name: self._figures(info)
            for info in self.store.list_collections()
            if tenant is None or info.tenant == tenant
        }

    def _figures(self, info: CollectionInfo) -> dict[str, Any]:
        """Documents, chunks, embedder, generation, index bytes and ingest runs by status."""
        root = self.collection_dir(info)
        docs, chunks = self.store.count_documents(info.id)
        return {
            "collection": info.name,
            "documents": docs,
            "chunks": chunks,
            "embedder": info.embedder_id,
            "vector_backend": info.vector_backend,
            "generation": info.generation,
            "index_bytes": index_bytes(self.store, info, root),
            "runs": self.store.run_counts(info.id),
        }

    def collection_health(self, name: str, *, recall_sample: int = 50) -> dict[str, Any]:
        """Everything the admin page shows for one collection (admin only: it spans every
        document): ``_figures`` plus freshness, failures, PII, flags, cache, latency and ANN
        recall."""
        from ragstack import health

        info = self.store.get_collection(name)
        pii, flagged = health.pii_and_flags(self.store, info.id)
        cache = self.cache_stats(name)
        lookups = cache.get("lookups", 0)
        return {
            **self._figures(info),
            "ingest_by_source": health.ingest_by_source(self.store, info.id),
            "failed_files": health.failed_files(self.store, info.id),
            "pii_counts": pii,
            "instruction_like_chunks": flagged,
            "cache": {
                **cache,
                "hit_rate": round(cache.get("hits", 0) / lookups, 4) if lookups else None,
            },
            "latency": health.latency_series(self.store, name),
            "ann": health.ann_recall(
                self.store, self._reader(info).dense, info.id, info.dim, sample=recall_sample
            ),
        }

    def reindex(self, name: str) -> dict[str, int]:
        """Rebuilds the collection's dense and BM25 indexes from SQL (the source of truth)."""
        info = self.store.get_collection(name)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            drop_indexes(self.store, info, root)
            indexes, report = self.open_indexes(info)
            indexes.save()
            self.store.bump_generation(info.id)
        return {"dense": report.dense_added, "bm25": report.lexical_added}

    def visible_collections(
        self, principals: Sequence[str], tenant: str | None = None
    ) -> list[tuple[CollectionInfo, int]]:
        """``(collection, documents the caller may read)`` for every collection it can see
        (``_sees``)."""
        readable = self.store.readable_documents(principals, tenant)
        out = []
        for info in self.store.list_collections():
            count = readable.get(info.id, 0)
            seen = _sees(info, principals, tenant)
            if seen or (seen is None and count):
                out.append((info, count))
        return out

    def visible_collection(
        self, name: str, principals: Sequence[str], tenant: str | None = None
    ) -> CollectionInfo:
        """The collection, or the very ``NotFoundError`` a missing one gives when the caller
        cannot see it (so its existence is not revealed). One EXISTS, no counting: every API
        search calls it."""
        info = self.store.get_collection(name)
        seen = _sees(info, principals, tenant)
        if seen or (seen is None and self.store.can_read_any(info.id, principals, tenant)):
            return info
        raise NotFoundError(f"no collection named {name!r}")

    def delete_collection(self, name: str) -> None:
        info = self.store.get_collection(name)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            self.store.delete_collection(name)
            drop_indexes(self.store, info, root)
        (root / ".lock").unlink(missing_ok=True)
        root.rmdir() if root.exists() and not any(root.iterdir()) else None
        shutil.rmtree(kept_dir(self.settings.data_dir, info.id), ignore_errors=True)

    # -- index health -----------------------------------------------------------------------

    def check_index(self, collection: str, *, repair: bool = True) -> CheckReport:
        """Prove SQL and every index of a collection agree (after the recovery any open does,
        unless ``repair`` is off)."""
        info = self.store.get_collection(collection)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            if repair:
                indexes, recovered = self.open_indexes(info)
            else:
                indexes = (
                    _load_without_repair(root, info)
                    if self._files
                    else self.open_indexes(info, repair=False)[0]
                )
                recovered = ReconcileReport()
            return indexes.check(self.store, recovered)


def _sees(info: CollectionInfo, principals: Sequence[str], tenant: str | None) -> bool | None:
    """Whether a caller sees a collection: not outside its tenant (a collection of none is
    everyone's), yes as its owner or in its default ACL (``public`` counts for everyone);
    otherwise ``None``: it sees it if it may read one of its documents."""
    if tenant is not None and info.tenant not in (None, tenant):
        return False
    who = set(principals) | {PUBLIC}
    return True if info.owner in who or who & set(info.default_acl) else None


def _load_without_repair(root: Path, info: CollectionInfo) -> CollectionIndexes:
    from indexes import Bm25Index, CorruptIndexError, open_vector_index
    from ragstack.indexing import new_vector_index

    try:
        dense = open_vector_index(root / info.dense_name, dim=info.dim, metric="cosine")
    except CorruptIndexError:
        dense = new_vector_index(info.vector_backend, info.dim)
    try:
        lexical = Bm25Index.load(root / "bm25")
    except CorruptIndexError:
        lexical = Bm25Index()
    return CollectionIndexes(root, info, dense, lexical)


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
        raise InputError(
            f"bad collection name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
