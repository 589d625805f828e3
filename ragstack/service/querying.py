"""Search: ACL-filtered retrieval, fusion and reranking over one collection."""

from __future__ import annotations

import time
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


class _Clock:
    """Per-stage timings in milliseconds."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = (now - self.last) * 1000
        self.last = now

    def since_start(self) -> float:
        return (time.perf_counter() - self.start) * 1000

    def done(self) -> dict[str, float]:
        return {**self.laps, "total_ms": self.since_start()}


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
    ) -> SearchResponse:
        """The best chunks for ``query`` among those ``principals`` may read; with ``rerank``
        (default ``RAGSTACK_RERANK_DEFAULT``) the first ``rerank_depth`` are reordered by the
        configured cross-encoder."""
        started = time.perf_counter()
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
        model = self._model(info)
        filters = filters or Filters()
        fusion = fusion or Fusion.from_json(self.store.get_setting(info.id, "fusion"))
        indexes = self._reader(info)
        allow = self._permitted(info, principals, tenant, filters)
        t_allow = time.perf_counter()
        qvec = query_vector
        if qvec is None and mode != "bm25":  # a repeated query costs no model call
            qvec = model.memo([query])
        t_embed = time.perf_counter()
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
        t_retrieve = time.perf_counter()
        hits = hydrate(self.store, retrieved)
        t_hydrate = time.perf_counter()
        if reranker is not None and hits:
            hits = rerank_hits(reranker, query, hits, self.settings.rerank_depth, fusion)[:top_k]
        done = time.perf_counter()
        timings = {
            "acl_ms": (t_allow - started) * 1000,
            "embed_ms": (t_embed - t_allow) * 1000,
            "retrieve_ms": (t_retrieve - t_embed) * 1000,
            "hydrate_ms": (t_hydrate - t_retrieve) * 1000,
            **({"rerank_ms": (done - t_hydrate) * 1000} if use_rerank else {}),
            "total_ms": (done - started) * 1000,
        }
        return SearchResponse(hits, mode, fusion, info.generation, timings)
