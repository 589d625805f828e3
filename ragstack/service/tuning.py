"""Tuning: fusion and the rerank weight from judged queries."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from ragstack.errors import InputError
from ragstack.evaluation import (
    Qrels,
    Reranked,
    RerankTuneResult,
    TuneResult,
    doc_key,
    tune,
    tune_rerank,
)
from ragstack.rerank import reranker_identity
from ragstack.search import Filters, Fusion, retrieve
from ragstack.service.querying import SearchMixin, rerank_passages


class TuningMixin(SearchMixin):
    def tune(
        self,
        collection: str,
        queries: Mapping[str, str],
        qrels: Qrels,
        *,
        principals: Sequence[str],
        tenant: str | None = None,
        candidates: int = 100,
        group_by: str = "",
        apply: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> TuneResult:
        """Picks the collection's fusion from judged queries (see ``ragstack.evaluation``) and,
        with ``apply``, stores it for every later search. With ``group_by`` (a document
        metadata key naming a parent), the weight of group evidence is tuned too."""
        info = self.store.get_collection(collection)
        model = self._model(info)
        judged = {q: t for q, t in queries.items() if q in qrels}
        if not judged:
            raise InputError("no query has a judgement: check that the ids match")
        indexes = self._reader(info)
        allow = self._permitted(info, principals, tenant, Filters())
        texts = list(judged.values())
        vectors = dict(zip(texts, model.embedder.embed(texts), strict=True))
        probe = Fusion(candidates=candidates)

        def candidates_for(text: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
            got = retrieve(
                indexes,
                model.embedder,
                text,
                allow,
                top_k=candidates,
                fusion=probe,
                query_vector=vectors[text],
            )
            return got.lexical, got.dense

        keys = {cid: doc_key(uri) for cid, uri in self.store.chunk_uris(info.id)}
        result = tune(
            candidates_for,
            keys.__getitem__,
            judged,
            qrels,
            candidates=candidates,
            group_by=group_by,
            group_of=self._groups(info, group_by) if group_by else None,
            progress=progress,
        )
        if apply:
            self.store.set_setting(info.id, "fusion", result.best.to_json())
        return result

    def tune_rerank(
        self,
        collection: str,
        queries: Mapping[str, str],
        qrels: Qrels,
        *,
        principals: Sequence[str],
        tenant: str | None = None,
        fusion: Fusion | None = None,
        apply: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> RerankTuneResult:
        """Picks the reranker's share of a reranked hit's score (``Fusion.rerank_weight``)
        from judged queries, searched in hybrid mode with ``fusion`` (default: the
        collection's); with ``apply``, stores that fusion with the weight, for this reranker
        (``reranker_identity``). Use queries the reranker was not trained on."""
        reranker = self.reranker()
        judged = {q: t for q, t in queries.items() if q in qrels}
        if not judged:
            raise InputError("no query has a judgement: check that the ids match")
        depth = self.settings.rerank_depth
        fusion = fusion or self.fusion(collection)
        runs: dict[str, Reranked] = {}
        for i, (qid, text) in enumerate(judged.items(), 1):
            hits = self.search(
                collection,
                text,
                principals=principals,
                tenant=tenant,
                top_k=max(100, depth),
                fusion=fusion,
                rerank=False,
            ).hits
            head = hits[:depth]
            runs[qid] = Reranked(
                [doc_key(h.uri) for h in head],
                [h.score for h in head],
                reranker.rerank(text, rerank_passages(head)) if head else [],
                [doc_key(h.uri) for h in hits[depth:]],
            )
            if progress is not None:
                progress(i, len(judged))
        result = tune_rerank(runs, qrels)
        if apply:
            identity = reranker_identity(reranker)
            tuned = replace(fusion, rerank_weight=result.weight, rerank_model=identity)
            self.set_fusion(collection, tuned)
        return result
