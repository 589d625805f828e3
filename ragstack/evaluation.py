"""Retrieval quality of a collection against judged queries, and fusion tuning from them.

Judgements name documents; search returns chunks, so a ranking of documents is the order in
which their first chunk appears. A judgement's document id matches a document whose URI is
that id, or ends with ``/<id>`` (BEIR corpora ingest as ``beir://<dataset>/<id>``).

``tune`` retrieves each query's BM25 and dense candidates once, then scores every fusion
setting of a small grid on those lists (fusion is cheap; retrieval is not), and returns the
best by mean nDCG@10. Tune on a training split and report on a held-out one.

``tune_rerank`` does the same for the reranker's share of a reranked hit's score: each query's
first stage and reranker scores are computed once, every weight of a grid is scored on them.
Tune it on queries the reranker was not trained on.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from ragstack.errors import InputError
from ragstack.search import Fusion, Hit, Mode, blended_order, fuse_grouped

Qrels = Mapping[str, Mapping[str, int]]  # query id -> document id -> gain


def load_judgements(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """``(queries, qrels)`` from a BEIR-layout folder: ``queries.jsonl`` (``_id``, ``text``)
    and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``, with a header line)."""
    queries_path, qrels_path = folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for path in (queries_path, qrels_path):
        if not path.is_file():
            raise InputError(f"{path} not found: judgements need queries.jsonl and qrels/")
    queries: dict[str, str] = {}
    with queries_path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    queries[str(row["_id"])] = str(row["text"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(f"{queries_path}:{n}: not a query record ({exc})") from exc
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for n, row in enumerate(reader, 2):
            try:
                qid, did, gain = row[0], row[1], int(row[2])
            except (IndexError, ValueError) as exc:
                raise InputError(f"{qrels_path}:{n}: expected query-id, corpus-id, score") from exc
            qrels.setdefault(qid, {})[did] = gain
    return queries, qrels


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains and a log2 discount, as BEIR (pytrec_eval) computes it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def doc_key(uri: str) -> str:
    """What a judgement calls a document: the last path segment of its URI."""
    return unquote(uri.rstrip("/").rsplit("/", 1)[-1])


def documents_in_order(keys: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for key in keys:
        seen.setdefault(key, None)
    return list(seen)


@dataclass(frozen=True)
class Metrics:
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p95_ms: float
    queries: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ndcg_at_10": round(self.ndcg_at_10, 4),
            "recall_at_100": round(self.recall_at_100, 4),
            "mrr_at_10": round(self.mrr_at_10, 4),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
            "queries": self.queries,
        }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def score(
    rankings: Mapping[str, Sequence[str]], qrels: Qrels, latencies_ms: Sequence[float] = ()
) -> Metrics:
    judged = [q for q in rankings if q in qrels]
    n = max(1, len(judged))
    return Metrics(
        ndcg_at_10=sum(ndcg_at_k(rankings[q], qrels[q], 10) for q in judged) / n,
        recall_at_100=sum(recall_at_k(rankings[q], qrels[q], 100) for q in judged) / n,
        mrr_at_10=sum(mrr_at_k(rankings[q], qrels[q], 10) for q in judged) / n,
        p50_ms=statistics.median(latencies_ms) if latencies_ms else 0.0,
        p95_ms=percentile(latencies_ms, 95),
        queries=len(judged),
    )


SearchFn = Callable[[str, Mode, int, Fusion | None], Sequence[Hit]]


def evaluate(
    search: SearchFn,
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    mode: Mode,
    fusion: Fusion | None = None,
    chunk_depth: int = 200,
) -> Metrics:
    """Runs every judged query through ``search`` one at a time (latency per query)."""
    rankings: dict[str, list[str]] = {}
    latencies = []
    for qid, text in queries.items():
        if qid not in qrels:
            continue
        t0 = time.perf_counter()
        hits = search(text, mode, chunk_depth, fusion)
        latencies.append((time.perf_counter() - t0) * 1000)
        rankings[qid] = documents_in_order(doc_key(h.uri) for h in hits)
    return score(rankings, qrels, latencies)


@dataclass(frozen=True)
class TuneResult:
    best: Fusion
    best_ndcg: float
    default_ndcg: float
    trials: list[tuple[Fusion, float]]


def fusion_grid(candidates: int) -> list[Fusion]:
    grid = [Fusion("rrf", rrf_k=k, candidates=candidates) for k in (5, 10, 20, 30, 45, 60, 100)]
    grid += [
        Fusion("weighted", dense_weight=round(w / 20, 2), candidates=candidates) for w in range(21)
    ]
    return grid


GROUP_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5)


def tune(
    candidates_for: Callable[[str], tuple[list[tuple[int, float]], list[tuple[int, float]]]],
    doc_of: Callable[[int], str],
    queries: Mapping[str, str],
    qrels: Qrels,
    *,
    candidates: int = 100,
    group_by: str = "",
    group_of: Mapping[int, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Best fusion by mean nDCG@10 over the judged ``queries``.

    ``candidates_for(query)`` returns the BM25 and dense ``(chunk id, score)`` lists (the
    caller's ACL applied), ``doc_of(chunk id)`` the judgement key of its document. With
    ``group_by`` and ``group_of`` (chunk id -> group), group evidence is tuned as well, by
    coordinate ascent: the fusion grid without it, the group weights on the best fusion,
    then the fusion grid again at the best weight.
    """
    judged = [(q, t) for q, t in queries.items() if q in qrels]
    lists = []
    for i, (qid, text) in enumerate(judged, 1):
        lists.append((qid, *candidates_for(text)))
        if progress is not None:
            progress(i, len(judged))
    trials: list[tuple[Fusion, float]] = []
    tried: dict[Fusion, float] = {}

    def trial(fusion: Fusion) -> float:
        if fusion not in tried:
            rankings = {
                qid: documents_in_order(
                    doc_of(cid) for cid, _ in fuse_grouped(lex, dense, fusion, group_of)[:100]
                )
                for qid, lex, dense in lists
            }
            tried[fusion] = score(rankings, qrels).ndcg_at_10
            trials.append((fusion, tried[fusion]))
        return tried[fusion]

    grid = fusion_grid(candidates)
    best = max(grid, key=trial)
    if group_by and group_of:
        weights = [replace(best, group_by=group_by, group_weight=w) for w in GROUP_WEIGHTS]
        weight = max(weights, key=trial).group_weight
        if weight > 0:
            best = max(
                (replace(f, group_by=group_by, group_weight=weight) for f in grid), key=trial
            )
    best_ndcg = tried[best]
    default = replace(Fusion(), candidates=candidates)
    default_ndcg = next((n for f, n in trials if f == default), float("nan"))
    return TuneResult(best, best_ndcg, default_ndcg, trials)


RERANK_WEIGHTS = tuple(w / 10 for w in range(11))


@dataclass(frozen=True)
class Reranked:
    """One query's first stage: the reranked head (document keys, first-stage and reranker
    scores, in first-stage order) and the document keys of the hits after it."""

    head: Sequence[str]
    first: Sequence[float]
    model: Sequence[float]
    tail: Sequence[str]

    def documents(self, weight: float) -> list[str]:
        order, _ = blended_order(self.first, self.model, weight)
        return documents_in_order([self.head[i] for i in order] + list(self.tail))


@dataclass(frozen=True)
class RerankTuneResult:
    weight: float
    best_ndcg: float
    first_stage_ndcg: float  # weight 0: the first stage's order
    reranker_ndcg: float  # weight 1: the reranker's order alone
    trials: list[tuple[float, float]]


def tune_rerank(
    runs: Mapping[str, Reranked], qrels: Qrels, weights: Sequence[float] = RERANK_WEIGHTS
) -> RerankTuneResult:
    """The reranker weight with the best mean nDCG@10 over ``runs`` (ties: the smaller)."""
    trials = [
        (w, score({q: r.documents(w) for q, r in runs.items()}, qrels).ndcg_at_10) for w in weights
    ]
    best, best_ndcg = max(trials, key=lambda t: (t[1], -t[0]))
    ndcg = dict(trials)
    return RerankTuneResult(
        best,
        best_ndcg,
        ndcg.get(0.0, float("nan")),
        ndcg.get(1.0, float("nan")),
        trials,
    )
