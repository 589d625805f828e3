"""The state every service capability shares, and the lookups they all use."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from indexes import IdFilter
from ragstack.cache import SemanticCache
from ragstack.config import Settings
from ragstack.domain import CollectionInfo
from ragstack.embedders import Model
from ragstack.errors import ConfigError, ConflictError, NotFoundError
from ragstack.indexing import CollectionIndexes, ReconcileReport, in_database
from ragstack.ingest.items import Redactor
from ragstack.rerank import Reranker
from ragstack.search import Filters, permitted_chunks
from ragstack.service.types import Components
from ragstack.store import Store
from ragstack.store.pgindex import SqlAllow

T = TypeVar("T")


class ServiceCore:
    """State every capability shares: settings, the store, the components, and the
    per-process caches keyed by collection generation."""

    # permitted sets kept per process, by their bytes (a million permitted chunks: 8 MB)
    permitted_cache_bytes = 256 << 20

    def __init__(self, settings: Settings, store: Store, components: Components) -> None:
        self.settings = settings
        self.store = store
        self.c = components
        self._readers: dict[int, tuple[int, CollectionIndexes]] = {}
        self._group_maps: dict[tuple[int, int, str], dict[int, str]] = {}
        self._settings: dict[tuple[int, int, str], str | None] = {}
        self._allowed: OrderedDict[tuple[object, ...], IdFilter | SqlAllow] = OrderedDict()
        self._allowed_bytes = 0
        self._views: OrderedDict[tuple[object, ...], str] = OrderedDict()
        self._lock = threading.RLock()
        self._files = not in_database(store)  # indexes in files (SQLite) or in the database
        self._redactors: dict[tuple[int, str, bool], Redactor] = {}

    def collection_dir(self, info: CollectionInfo) -> Path:
        return self.settings.collections_dir / f"{info.id:06d}-{info.name}"

    def _model(self, info: CollectionInfo) -> Model:
        """The embedding model the collection pinned (loaded on first use), or a
        ``ConfigError`` saying what it needs to run here."""
        model = self.c.models.get(info.embedder_id)
        if model.embedder.dim != info.dim:
            raise ConflictError(
                f"collection {info.name!r} is pinned to embedder {info.embedder_id} with "
                f"dim {info.dim}; that model here gives dim {model.embedder.dim}"
            )
        return model

    def open_indexes(
        self, info: CollectionInfo, *, repair: bool = True
    ) -> tuple[CollectionIndexes, ReconcileReport]:
        """The collection's indexes, reconciled with SQL unless ``repair`` is off."""
        return CollectionIndexes.open(self.collection_dir(info), info, self.store, repair=repair)

    def redacted(self, collection: str, text: str) -> str | None:
        """``text`` through the collection's PII redactor (for logs and the audit trail);
        ``None`` when there is no such collection to take the redactor from."""
        try:
            info = self.store.get_collection(collection)
        except NotFoundError:
            return None
        return self._redactor(info).redact_many([text])[0].text

    def _redactor(self, info: CollectionInfo) -> Redactor:
        """A collection's redactor (its salt never changes), built once per process."""
        key = (info.id, info.pii_mode, info.pii_ner)
        with self._lock:
            found = self._redactors.get(key)
        if found is None:
            found = self.c.redactor_for(info, self.store.pii_salt(info.name))
            with self._lock:
                self._redactors[key] = found
        return found

    def cache_stats(self, collection: str) -> dict[str, int]:
        info = self.store.get_collection(collection)
        return SemanticCache(self.store).stats(info.id)

    def clear_cache(self, collection: str) -> int:
        info = self.store.get_collection(collection)
        return SemanticCache(self.store).clear(info.id)

    def reranker(self) -> Reranker:
        """The configured reranker, or a ``ConfigError`` saying how to configure one."""
        if self.c.reranker is None:
            raise ConfigError("reranking needs a cross-encoder: set RAGSTACK_RERANKER_PATH")
        return self.c.reranker

    def _reader(self, info: CollectionInfo) -> CollectionIndexes:
        """The collection's indexes at ``info``'s index generation, or at a newer one another
        thread opened since ``info`` was read (never an older one: a live re-embed may have
        dropped it). Callers take the model and generation from the returned ``info``."""
        with self._lock:
            cached = self._readers.get(info.id)
            if cached is not None and cached[0] > info.index_generation:
                return cached[1]
            if cached is None or cached[0] != info.index_generation:
                # readers of database indexes never reconcile: writers do, under the lock
                cached = (info.index_generation, self.open_indexes(info, repair=self._files)[0])
                self._readers[info.id] = cached
            return cached[1]

    def _groups(self, info: CollectionInfo, key: str) -> dict[int, str]:
        """Chunk id -> its document's ``key`` metadata value, cached per generation."""
        return self._per_generation(
            self._group_maps, info, key, lambda: self.store.chunk_groups(info.id, key)
        )

    def _setting(self, info: CollectionInfo, key: str) -> str | None:
        """A collection setting as of ``info``'s generation (setting one bumps it), read from
        SQL once per generation instead of on every search."""
        return self._per_generation(
            self._settings, info, key, lambda: self.store.get_setting(info.id, key)
        )

    def _per_generation(
        self,
        cache: dict[tuple[int, int, str], T],
        info: CollectionInfo,
        key: str,
        load: Callable[[], T],
    ) -> T:
        """``load()``'s value for ``key`` of the collection at ``info``'s generation, loaded
        once per generation; what older generations of the collection cached is dropped."""
        cache_key = (info.id, info.generation, key)
        with self._lock:
            if cache_key in cache:
                return cache[cache_key]
        value = load()
        with self._lock:
            for stale in [k for k in cache if k[0] == info.id and k[1] < info.generation]:
                del cache[stale]
            cache[cache_key] = value
        return value

    def _permitted(
        self,
        info: CollectionInfo,
        principals: Sequence[str],
        tenant: str | None,
        filters: Filters,
    ) -> IdFilter | SqlAllow:
        """The caller's permitted chunk ids, cached per collection generation (a committed
        change bumps it, so a stale set is never used), for either backend: indexes in the
        database take the ids as one bound list (or the shorter list of the rest) and keep
        their statistics per set object, as the embedded ones do. Joining the ACL query into
        every search instead cost more than the search itself (100-300 ms at 100k chunks)."""
        key = (info.id, info.generation, frozenset(principals), tenant, filters)
        with self._lock:
            found = self._allowed.get(key)
            if found is not None:
                self._allowed.move_to_end(key)
                return found
        allow = permitted_chunks(self.store, info.id, principals, tenant=tenant, filters=filters)
        with self._lock:
            raced = self._allowed.get(key)
            if raced is not None:  # another request built it meanwhile: share one object
                return raced
            self._allowed[key] = allow
            self._allowed_bytes += _nbytes(allow)
            while self._allowed_bytes > self.permitted_cache_bytes and len(self._allowed) > 1:
                _key, old = self._allowed.popitem(last=False)
                self._allowed_bytes -= _nbytes(old)
        return allow

    def clear_permitted(self) -> None:
        """Forget every cached permitted set (what a cold start has; benchmarks time it)."""
        with self._lock:
            self._allowed.clear()
            self._allowed_bytes = 0

    def _view(
        self,
        info: CollectionInfo,
        principals: Sequence[str],
        tenant: str | None,
        filters: Filters,
    ) -> str:
        """A digest of exactly the chunks the caller may read: what its cached answers are
        keyed by. Chunk ids are never reused and a chunk never changes under its id, so the
        digest changes with every change the caller can see and with nothing else. Cached per
        generation, like the permitted set."""
        key = ("view", info.id, info.generation, frozenset(principals), tenant, filters)
        with self._lock:
            found = self._views.get(key)
        if found is not None:
            return found
        allow = self._permitted(info, principals, tenant, filters)
        if isinstance(allow, IdFilter):
            digest = hashlib.sha256(allow.ids.astype("<i8").tobytes()).hexdigest()
        else:
            digest = self.store.ids_digest(allow.select)
        with self._lock:
            self._views[key] = digest
            while len(self._views) > 256:
                self._views.popitem(last=False)
        return digest


def _nbytes(allow: IdFilter | SqlAllow) -> int:
    """What a cached permitted set costs (a query object: a nominal kilobyte)."""
    return allow.ids.nbytes + 64 if isinstance(allow, IdFilter) else 1024
