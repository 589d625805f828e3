"""Reranking benchmark: ``python -m evals.bench_rerank [--model DIR] [--json]``.

For SciFact (test split) and PubMedQA (test split; the reranker was trained on SciFact train
only, so PubMedQA is unseen data), each first stage (bm25, dense, their RRF) is measured
alone, with its top N reordered by the cross-encoder (``ce``), and with the
cross-encoder's rank fused with the first-stage rank by reciprocal-rank fusion (``fused``:
``1/(60 + first-stage rank) + 1/(60 + reranker rank)`` inside the top N; below it the
first-stage order is kept); for the RRF first stage also ``fused3``, the RRF of the BM25,
dense and reranker orders inside the top N. All fusions are unweighted (nothing is tuned
on test data). Metrics: nDCG@10, recall@100, MRR@10. N is each of ``--depths`` for RRF and
the first of them for bm25 and dense (``--all-depths``: every one): on this 2-core CPU
scoring costs ~0.1 s per pair at 192 tokens, so the union of every first stage's top 100 (~170
passages per query) would take hours.

Latency: ``CrossEncoderReranker.rerank`` on the first stage's top 20 of one query at a time,
p50 / p95, at several ``max_length`` settings (the quality figures use ``--max-length``).

Each (query, passage) is scored once per run; scores are cached in ``.cache/rerank-scores``
keyed by the model's weights, ``max_length`` and the texts, so a rerun costs only latency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.beir import (
    REPO_ROOT,
    BeirDataset,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    shared_data_dir,
)
from evals.report import Cell, Reporter
from evals.train_reranker import DEFAULT_OUT, Rankings, first_stage, log, rrf
from ragstack.embedding import file_sha256
from ragstack.rerank import CrossEncoderReranker, trained_max_length

CACHE_DIR = REPO_ROOT / ".cache" / "rerank-scores"
FIRST_STAGES = ("bm25", "dense", "rrf")
Scores = dict[str, dict[int, float]]  # query id -> corpus position -> reranker score


@dataclass(frozen=True)
class Metrics:
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float

    def as_dict(self) -> dict[str, float]:
        return {
            "ndcg_at_10": self.ndcg_at_10,
            "recall_at_100": self.recall_at_100,
            "mrr_at_10": self.mrr_at_10,
        }


def measure(ds: BeirDataset, ranked: Mapping[str, Sequence[int]]) -> Metrics:
    n, r, m = [], [], []
    for qid, positions in ranked.items():
        docs = [ds.corpus[i].doc_id for i in positions]
        n.append(ndcg_at_k(docs, ds.qrels[qid], 10))
        r.append(recall_at_k(docs, ds.qrels[qid], 100))
        m.append(mrr_at_k(docs, ds.qrels[qid], 10))
    return Metrics(float(np.mean(n)), float(np.mean(r)), float(np.mean(m)))


def reorder(first: Sequence[int], scores: Mapping[int, float], depth: int) -> list[int]:
    """The top ``depth`` of ``first`` sorted by reranker score, then the rest unchanged."""
    head = sorted(first[:depth], key=lambda d: -scores[d])  # stable: ties keep first-stage order
    return head + list(first[depth:])


def fused(first: Sequence[int], scores: Mapping[int, float], depth: int) -> list[int]:
    """RRF of the first-stage order and the reranker order inside the top ``depth``."""
    head = list(first[:depth])
    by_model = sorted(head, key=lambda d: -scores[d])
    return rrf([head, by_model])[:depth] + list(first[depth:])


def fused3(ranked: Rankings, scores: Mapping[int, float], depth: int) -> list[int]:
    """RRF of the BM25, dense and reranker orders of the RRF top ``depth``."""
    head = ranked.rrf[:depth]
    inside = set(head)
    lists = [[d for d in ranked.bm25 if d in inside], [d for d in ranked.dense if d in inside]]
    lists.append(sorted(head, key=lambda d: -scores[d]))
    return rrf(lists)[:depth] + list(ranked.rrf[depth:])


def model_key(model_dir: Path, max_length: int) -> str:
    digest = hashlib.sha256(file_sha256(model_dir / "model.safetensors").encode())
    digest.update(f"\0{max_length}".encode())
    return digest.hexdigest()[:20]


def score_candidates(
    reranker: CrossEncoderReranker,
    ds: BeirDataset,
    queries: Sequence[tuple[str, str]],
    wanted: Mapping[str, set[int]],
    key: str,
) -> Scores:
    """Reranker scores of every wanted (query, passage), from the cache or computed."""
    texts = hashlib.sha256("\0".join(d.full_text for d in ds.corpus).encode()).hexdigest()[:12]
    path = CACHE_DIR / f"{ds.name}-{key}-{texts}.json"
    cached: dict[str, dict[str, float]] = {}
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
    out: Scores = {}
    todo = sum(1 for qid, _ in queries if len(wanted[qid] - {int(d) for d in cached.get(qid, {})}))
    done, started = 0, time.perf_counter()
    for qid, text in queries:
        have = {int(d): s for d, s in cached.get(qid, {}).items()}
        missing = sorted(wanted[qid] - have.keys())
        if missing:
            scores = reranker.rerank(text, [ds.corpus[i].full_text for i in missing])
            have.update(zip(missing, scores, strict=True))
            cached[qid] = {str(d): s for d, s in have.items()}
            done += 1
            if done % 25 == 0 or done == todo:
                elapsed = time.perf_counter() - started
                log(f"{ds.name}: scored {done}/{todo} queries ({elapsed:.0f}s)")
                _save(path, cached)
        out[qid] = have
    return out


def _save(path: Path, cached: Mapping[str, Mapping[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cached, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def latency(
    reranker: CrossEncoderReranker,
    ds: BeirDataset,
    queries: Sequence[tuple[str, str]],
    rankings: Mapping[str, Rankings],
    n: int,
) -> tuple[float, float]:
    """p50 / p95 milliseconds of reranking the RRF top 20 of one query at a time."""
    first_qid, first_text = queries[0]
    reranker.rerank(first_text, [ds.corpus[i].full_text for i in rankings[first_qid].rrf[:20]])
    times = []
    for qid, text in queries[:n]:
        passages = [ds.corpus[i].full_text for i in rankings[qid].rrf[:20]]
        t0 = time.perf_counter()
        reranker.rerank(text, passages)
        times.append((time.perf_counter() - t0) * 1000)
    p95 = float(np.percentile(times, 95)) if len(times) > 1 else times[0]
    return statistics.median(times), p95


def bench_dataset(
    ds: BeirDataset,
    reranker: CrossEncoderReranker,
    key: str,
    depths: Sequence[int],
    max_queries: int,
    stages: Sequence[str],
    all_depths: bool,
) -> tuple[list[list[Cell]], dict[str, dict[str, dict[str, float]]], dict[str, Rankings]]:
    queries = ds.judged_queries()[: max_queries or None]
    log(f"{ds.name}: first stage for {len(queries)} queries")
    rankings = first_stage(ds, queries, depth=max(100, *depths))
    plan = {name: depths if all_depths or name == "rrf" else depths[:1] for name in stages}
    wanted = {
        qid: {d for name in stages for d in rankings[qid].get(name)[: max(plan[name])]}
        for qid, _ in queries
    }
    scores = score_candidates(reranker, ds, queries, wanted, key)
    rows: list[list[Cell]] = []
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name in stages:
        first = {qid: rankings[qid].get(name) for qid, _ in queries}
        variants: dict[str, Metrics] = {"none": measure(ds, first)}
        for depth in plan[name]:
            variants[f"ce@{depth}"] = measure(
                ds, {q: reorder(r, scores[q], depth) for q, r in first.items()}
            )
            variants[f"fused@{depth}"] = measure(
                ds, {q: fused(r, scores[q], depth) for q, r in first.items()}
            )
            if name == "rrf":
                variants[f"fused3@{depth}"] = measure(
                    ds, {q: fused3(rankings[q], scores[q], depth) for q in first}
                )
        figures[name] = {v: m.as_dict() for v, m in variants.items()}
        for variant, m in variants.items():
            rows.append([ds.name, name, variant, m.ndcg_at_10, m.recall_at_100, m.mrr_at_10])
    return rows, figures, rankings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, default=shared_data_dir(), help="holds scifact/, pubmedqa/")
    p.add_argument("--datasets", default="scifact,pubmedqa")
    p.add_argument("--model", type=Path, default=DEFAULT_OUT, help="a cross-encoder directory")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens, for the quality figures (default: the length the model was trained at)",
    )
    p.add_argument("--depths", default="20,50", help="rerank depths (100 works, at 4x the cost)")
    p.add_argument(
        "--all-depths", action="store_true", help="every depth for bm25 and dense too, not only rrf"
    )
    p.add_argument("--first-stages", default=",".join(FIRST_STAGES), help="of bm25,dense,rrf")
    p.add_argument("--max-queries", type=int, default=0, help="0: every judged test query")
    p.add_argument("--latency-queries", type=int, default=30)
    p.add_argument("--latency-lengths", default="128,192,256", help="max_length values to time")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: see train_reranker)")
    p.add_argument("--json", action="store_true", help="print only the final JSON line")
    a = p.parse_args(argv)
    rep = Reporter(a.json)

    import torch

    torch.set_num_threads(a.threads)
    depths = sorted({int(d) for d in a.depths.split(",")})
    if a.max_length is None:
        a.max_length = trained_max_length(a.model)
    reranker = CrossEncoderReranker(a.model, max_length=a.max_length)
    key = model_key(a.model, a.max_length)
    rows: list[list[Cell]] = []
    lat_rows: list[list[Cell]] = []
    payload: dict[str, object] = {
        "model": str(a.model),
        "max_length": a.max_length,
        "depths": depths,
        "threads": a.threads,
    }
    for name in a.datasets.split(","):
        ds = load_beir(a.data / name, "test")
        ds_rows, figures, rankings = bench_dataset(
            ds, reranker, key, depths, a.max_queries, a.first_stages.split(","), a.all_depths
        )
        rows += ds_rows
        queries = ds.judged_queries()[: a.max_queries or None]
        timings: dict[str, dict[str, float]] = {}
        for length in (int(x) for x in a.latency_lengths.split(",") if x):
            timed = CrossEncoderReranker(a.model, max_length=length)
            p50, p95 = latency(timed, ds, queries, rankings, a.latency_queries)
            timings[str(length)] = {"p50_ms": p50, "p95_ms": p95}
            lat_rows.append([ds.name, length, p50, p95])
        best = max(
            ((fs, v, m["ndcg_at_10"]) for fs, vs in figures.items() for v, m in vs.items()),
            key=lambda t: t[2],
        )
        payload[name] = {
            "queries": len(queries),
            "metrics": figures,
            "latency_top20": timings,
            "best": {"first_stage": best[0], "variant": best[1], "ndcg_at_10": best[2]},
        }
    rep.table(
        f"Reranking with {a.model.name} (max_length {a.max_length}): test splits",
        ["dataset", "first stage", "rerank", "nDCG@10", "R@100", "MRR@10"],
        rows,
    )
    rep.table(
        f"Rerank latency, top 20, one query at a time ({a.threads} torch thread(s))",
        ["dataset", "max_length", "p50 ms", "p95 ms"],
        lat_rows,
    )
    rep.final(payload)


if __name__ == "__main__":
    main()
