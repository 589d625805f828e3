"""Search: ACL-filtered retrieval, fusion and reranking over one collection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ragstack.compression import F32
from ragstack.domain import check_principal
from ragstack.errors import InputError
from ragstack.rerank import Reranker, reranker_identity
from ragstack.search import MODES, Filters, Fusion, Hit, Mode, blended_order, hydrate, retrieve
from ragstack.service.core import ServiceCore
from ragstack.service.types import SearchResponse
from ragstack.store import index_text
from ragstack.tracing import Stages


def rerank_passages(hits: Sequence[Hit]) -> list[str]:
    """What the reranker reads of each hit: title and section as context, then the text."""
    return [index_text(" > ".join(x for x in (h.title, h.section) if x), h.text) for h in hits]


def rerank_hits(
    reranker: Reranker, query: str, hits: list[Hit], depth: int, fusion: Fusion
) -> list[Hit]:
    """The first ``depth`` hits reordered by the reranker's score, blended with their first-
    stage score by the fusion's ``rerank_weight`` (``blend``); the rest keep their order after
    them. Each reranked hit's ``ranks["rerank"]`` is its rank by the reranker alone. A weight
    of 0 (tuned so where the reranker does not help) leaves the hits as they are, unscored."""
    weight = fusion.rerank_weight_for(reranker_identity(reranker))
    if weight <= 0.0:
        return hits
    head, tail = hits[:depth], hits[depth:]
    scores = reranker.rerank(query, rerank_passages(head))
    by_model = sorted(range(len(head)), key=lambda i: -scores[i])
    model_rank = {i: r for r, i in enumerate(by_model, 1)}
    order, final = blended_order([h.score for h in head], scores, weight)
    return [
        replace(head[i], score=final[i], ranks={**head[i].ranks, "rerank": model_rank[i]})
        for i in order
    ] + tail


class SearchMixin(ServiceCore):
    def fusion(self, collection: str) -> Fusion:
        """The collection's fusion settings (tuned by ``ragstack tune``, else the defaults)."""
        info = self.store.get_collection(collection)
        return Fusion.from_json(self.store.get_setting(info.id, "fusion"))

    def set_fusion(self, collection: str, fusion: Fusion) -> None:
        info = self.store.get_collection(collection)
        self.store.set_setting(info.id, "fusion", fusion.to_json())

    def search(
        self,
        collection: str,
        query: str,
        *,
        principals: Sequence[str],
        tenant: str | None = None,
        mode: Mode = "hybrid",
        top_k: int = 10,
        filters: Filters | None = None,
        fusion: Fusion | None = None,
        query_vector: F32 | None = None,
        rerank: bool | None = None,
        vector_model: str | None = None,
    ) -> SearchResponse:
        """The best chunks for ``query`` among those ``principals`` may read; with ``rerank``
        (default ``RAGSTACK_RERANK_DEFAULT``) the first ``rerank_depth`` are reordered by the
        configured cross-encoder. A ``query_vector`` made by ``vector_model`` is used only
        while the collection is still pinned to that model."""
        with (
            Stages("ragstack.search", collection=collection, mode=mode, top_k=top_k) as clock,
            self.store.pinned(),  # on PostgreSQL, one connection for the whole search
        ):
            return self._search(clock, collection, query, principals, tenant, mode, top_k,
                                filters, fusion, query_vector, rerank, vector_model)  # fmt: skip

    def _search(
        self,
        clock: Stages,
        collection: str,
        query: str,
        principals: Sequence[str],
        tenant: str | None,
        mode: Mode,
        top_k: int,
        filters: Filters | None,
        fusion: Fusion | None,
        query_vector: F32 | None,
        rerank: bool | None,
        vector_model: str | None = None,
    ) -> SearchResponse:
        if mode not in MODES:
            raise InputError(f"mode must be bm25, dense or hybrid, not {mode!r}")
        if not 1 <= top_k <= 1000:
            raise InputError("top_k must be between 1 and 1000")
        if not query.strip():
            raise InputError("the query is empty")
        if len(query) > 4096:
            raise InputError("the query is longer than 4,096 characters")
        for p in principals:
            check_principal(p)
        info = self.store.get_collection(collection)
        indexes = self._reader(info)
        if indexes.info.index_generation > info.index_generation:
            info = indexes.info  # read after ours: its model goes with that index
        model = self._model(info)
        if vector_model is not None and vector_model != info.embedder_id:
            query_vector = None  # embedded with the model the collection just left
        filters = filters or Filters()
        fusion = fusion or Fusion.from_json(self._setting(info, "fusion"))
        clock.lap("lookup_ms")  # the collection, its indexes and settings
        allow = self._permitted(info, principals, tenant, filters)
        clock.lap("acl_ms")
        qvec = query_vector
        if qvec is None and mode != "bm25":  # a repeated query costs no model call
            qvec = model.memo([query])
        clock.lap("embed_ms")
        use_rerank = self.settings.rerank_default if rerank is None else rerank
        reranker = self.reranker() if use_rerank else None
        depth = max(top_k, self.settings.rerank_depth) if use_rerank else top_k
        retrieved = retrieve(
            indexes,
            model.embedder,
            query,
            allow,
            mode=mode,
            top_k=depth,
            fusion=fusion,
            query_vector=qvec,
            group_of=self._groups(info, fusion.group_by) if fusion.grouped else None,
        )
        clock.lap("retrieve_ms")
        hits = hydrate(self.store, retrieved)
        clock.lap("hydrate_ms")
        if reranker is not None and hits:
            hits = rerank_hits(reranker, query, hits, self.settings.rerank_depth, fusion)[:top_k]
        if use_rerank:
            clock.lap("rerank_ms")
        clock.set(hits=len(hits), rerank=use_rerank)
        return SearchResponse(hits, mode, fusion, info.generation, clock.done())
