"""Query-path benchmark: ``python -m evals.bench_query [--json]``.

On SciFact (ingested once into ``.cache/evals``), through the service layer with the ACL
filter on, one query at a time:

- search latency (hybrid, top 10) against a baseline run in the same process: the bare
  index work (BM25 + dense + fusion on a precomputed permitted set and query vector), so the
  ratio shows what the service adds (SQL, embedding the query, hydration);
- the same searches with the query embedded on torch instead of the fp32 ONNX query path;
- reranking of the top ``rerank_depth`` when a cross-encoder is configured (and, for the
  ONNX reranker, the same model on torch as its baseline);
- an answer-cache hit (an exact repeat) against a full extractive answer;
- the semantic cache on SciFact claims: hit rate on question-form and synonym paraphrases of
  cached claims, and false hits on near misses (negation, direction words, changed numbers,
  and the negated twins SciFact itself contains), at several thresholds.

Table, then ONE final JSON line (only that line with ``--json``).
"""

from __future__ import annotations

import argparse
import functools
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from evals.beir import BeirDataset, load_beir, shared_data_dir
from evals.collections import PRINCIPAL, default_reranker, ensure_collection, eval_service
from evals.report import Cell, Reporter
from ragstack.answering import AnswerRequest
from ragstack.cache import near_miss
from ragstack.evaluation import percentile
from ragstack.rerank import CrossEncoderReranker, OnnxReranker, reranker_identity
from ragstack.search import Filters, Fusion, retrieve
from ragstack.service import Ragstack

_SYNONYMS = {
    "associated with": "linked to",
    "increases": "raises",
    "increase": "raise",
    "reduces": "lowers",
    "reduce": "lower",
    "patients": "people",
    "individuals": "people",
    "risk": "likelihood",
    "causes": "leads to",
    "cause": "lead to",
    "results in": "leads to",
    "is required for": "is needed for",
    "required": "needed",
    "impaired": "reduced",
    "children": "kids",
}
_TEMPLATES = (
    "Is it true that {c}?",
    "Is there evidence that {c}?",
    "Does research show that {c}?",
    "{C}?",
)
_AUX = re.compile(r"\b(is|are|was|were|can|may|might|will|could|should|has|have|had)\b")
_SWAP = {
    "increase": "decrease", "increases": "decreases", "increased": "decreased",
    "decrease": "increase", "decreases": "increases", "decreased": "increased",
    "higher": "lower", "lower": "higher", "reduces": "increases", "reduced": "increased",
    "more": "less", "less": "more", "positive": "negative", "negative": "positive",
    "promotes": "inhibits", "inhibits": "promotes", "enhances": "suppresses",
}  # fmt: skip
_NUM = re.compile(r"\b\d+(?:\.\d+)?\b")


def paraphrases(claim: str) -> list[str]:
    body = claim.rstrip(" .")
    low = body[0].lower() + body[1:] if body[:2] != body[:2].upper() else body
    out = [t.format(c=low, C=body) for t in _TEMPLATES]
    swapped = body
    for a, b in _SYNONYMS.items():
        swapped = re.sub(rf"\b{a}\b", b, swapped)
    if swapped != body:
        out.append(swapped + ".")
    return out


def near_misses(claim: str) -> list[tuple[str, str]]:
    body = claim.rstrip(" .")
    out = []
    m = _AUX.search(body)
    if m and " not " not in f" {body} ":
        out.append(("negation", body[: m.end()] + " not" + body[m.end() :] + "."))
    else:
        out.append(("negation", f"It is not true that {body[0].lower() + body[1:]}."))
    words = body.split()
    swapped = [_SWAP.get(w.lower(), w) for w in words]
    if swapped != words:
        out.append(("direction", " ".join(swapped) + "."))
    n = _NUM.search(body)
    if n:
        changed = str(int(float(n.group())) * 2 + 3)
        out.append(("numbers", body[: n.start()] + changed + body[n.end() :] + "."))
    return out


def twins(claims: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of SciFact claims identical but for a negation."""
    drop = {"not", "no", "nt", "does", "do", "is", "are", "did"}

    def key(c: str) -> tuple[str, ...]:
        return tuple(
            w for w in re.findall(r"[a-z0-9]+", c.lower().replace("n't", " nt")) if w not in drop
        )

    groups: dict[tuple[str, ...], set[str]] = {}
    for c in claims:
        groups.setdefault(key(c), set()).add(c)
    return [(a, b) for g in groups.values() if len(g) == 2 for a, b in [sorted(g)]]


def selectivity_costs(
    svc: Ragstack, name: str, queries: Sequence[str], vectors: np.ndarray, *, quiet: bool
) -> dict[str, dict[str, float]]:
    """Search cost at 1%, 10% and 100% of chunks permitted, before and after issue 15's
    BM25 statistics over the permitted set (``evals.selectivity``), on a copy of the
    collection with ACLs of those widths."""
    from evals.selectivity import clone_with_acls, costs

    t0 = time.perf_counter()
    chunks = clone_with_acls(svc, name, f"{name}-acl")
    if not quiet:
        print(f"ACL copy of {name}: {chunks:,} chunks ({time.perf_counter() - t0:.0f} s)")
    return costs(svc, f"{name}-acl", queries, vectors)


def forget_queries(svc: Ragstack) -> None:
    """Forget embedded queries: every timed pass embeds each query again."""
    if svc.c.memo is not None:
        svc.c.memo.clear()


def time_rerank(
    svc: Ragstack, name: str, queries: Sequence[str], fusion: Fusion, cold: Callable[[], None]
) -> tuple[list[float], list[float], float | None]:
    """Search + rerank latencies (100 queries), the same on torch when the reranker is the
    ONNX one (30 queries; same weights and length, so the same tuned weight), and the
    reranker's weight; nothing without a reranker."""
    reranker = svc.c.reranker
    if reranker is None:
        return [], [], None
    principals = [PRINCIPAL]
    # a weight tuned to 0 skips the reranker: time it running (its order alone, then)
    if fusion.rerank_weight_for(reranker_identity(reranker)) == 0:
        fusion = replace(fusion, rerank_weight=1.0, rerank_model="")

    def reranked(n: int) -> list[float]:
        svc.search(name, "warm up", principals=principals, rerank=True, fusion=fusion)
        cold()
        out = []
        for q in queries[:n]:
            r = svc.search(name, q, principals=principals, top_k=10, rerank=True, fusion=fusion)
            out.append(r.timings_ms["total_ms"])
        return out

    rerank_ms = reranked(100)
    torch_ms: list[float] = []
    if isinstance(reranker, OnnxReranker):  # baseline: the same model on torch
        svc.c.reranker = CrossEncoderReranker(reranker.model_dir, max_length=reranker.max_length)
        try:
            torch_ms = reranked(30)
        finally:
            svc.c.reranker = reranker
    return rerank_ms, torch_ms, fusion.rerank_weight_for(reranker_identity(reranker))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    parser.add_argument("--queries", type=int, default=300, help="test queries timed")
    parser.add_argument("--cache-claims", type=int, default=400, help="claims cached")
    parser.add_argument("--answers", type=int, default=30, help="answers timed (miss vs hit)")
    parser.add_argument("--embedder", default=None)
    parser.add_argument(
        "--reranker",
        type=Path,
        default=None,
        help="cross-encoder directory (default RAGSTACK_RERANKER_PATH, else the one "
        "evals.train_reranker wrote, if any)",
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    svc = eval_service(args.embedder, args.reranker or default_reranker())
    name = ensure_collection(svc, args.data, quiet=args.json)
    ds = load_beir(args.data, "test")
    queries = [t for _q, t in ds.judged_queries()][: args.queries]
    principals = [PRINCIPAL]
    info = svc.collection(name)
    svc.search(name, "warm up", principals=principals)
    indexes = svc._reader(info)
    allow = svc._permitted(info, principals, None, Filters())
    vectors = svc.c.embedder.embed(queries)
    fusion = svc.fusion(name)

    def bare(i: int) -> None:
        retrieve(indexes, svc.c.embedder, queries[i], allow, top_k=10, fusion=fusion,
                 query_vector=vectors[i])  # fmt: skip

    base_ms = []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        bare(i)
        base_ms.append((time.perf_counter() - t0) * 1000)
    search_ms: list[float] = []
    embed_ms: list[float] = []
    cold = functools.partial(forget_queries, svc)
    cold()
    for q in queries:
        r = svc.search(name, q, principals=principals, top_k=10)
        search_ms.append(r.timings_ms["total_ms"])
        embed_ms.append(r.timings_ms["embed_ms"])
    # baseline for the query path: the same searches with the query embedded by torch
    torch_search_ms: list[float] = []
    engine = getattr(svc.c.embedder, "query_engine", None)
    if engine is not None:
        svc.c.embedder.query_engine = None  # type: ignore[attr-defined]
        svc.search(name, "warm up torch", principals=principals)
        cold()
        for q in queries:
            r = svc.search(name, q, principals=principals, top_k=10)
            torch_search_ms.append(r.timings_ms["total_ms"])
        svc.c.embedder.query_engine = engine  # type: ignore[attr-defined]

    reranker = svc.c.reranker
    rerank_ms, torch_rerank_ms, weight = time_rerank(svc, name, queries, fusion, cold)

    # answers: a miss (full extractive answer) and then its exact repeat (a cache hit)
    svc.clear_cache(name)
    cold()
    miss_ms, hit_ms = [], []
    for q in queries[: args.answers]:
        req = AnswerRequest(name, q, tuple(principals), generator="extractive")
        miss_ms.append(svc.ask(req).timings_ms["total_ms"])
        t0 = time.perf_counter()
        again = svc.ask(req)
        hit_ms.append((time.perf_counter() - t0) * 1000)
        assert again.cached

    cache_rows, cache_result = cache_quality(svc, ds, args.cache_claims)
    acl_costs = selectivity_costs(svc, name, queries, vectors, quiet=args.json)
    p50 = statistics.median
    result: dict[str, object] = {
        "search_p50_ms": p50(search_ms),
        "search_p95_ms": percentile(search_ms, 95),
        "search_embed_p50_ms": p50(embed_ms),
        "baseline_index_p50_ms": p50(base_ms),
        "search_ratio_to_baseline": p50(search_ms) / p50(base_ms),
        "search_torch_query_p50_ms": p50(torch_search_ms) if torch_search_ms else None,
        "rerank_p50_ms": p50(rerank_ms) if rerank_ms else None,
        "rerank_p95_ms": percentile(rerank_ms, 95) if rerank_ms else None,
        "rerank_torch_p50_ms": p50(torch_rerank_ms) if torch_rerank_ms else None,
        "rerank_speedup_vs_torch": (
            p50(torch_rerank_ms) / p50(rerank_ms) if torch_rerank_ms else None
        ),
        "reranker": reranker.model_id if reranker is not None else None,
        "rerank_weight": weight,
        "answer_miss_p50_ms": p50(miss_ms),
        "cache_hit_p50_ms": p50(hit_ms),
        "cache_hit_speedup": p50(miss_ms) / p50(hit_ms),
        **cache_result,
        "acl_search_p50_ratio": {w: round(c["ratio"], 4) for w, c in acl_costs.items()},
        "acl_search_p50_ratio_worst": max(c["ratio"] for c in acl_costs.values()),
        "embedder": svc.c.embedder.model_id,
        "queries": len(queries),
    }
    rerank_note = "no reranker configured"
    if weight is not None:
        rerank_note = f"top {svc.settings.rerank_depth}, reranker weight {weight:.1f}"
    rows: list[list[Cell]] = [
        ["search hybrid top-10", p50(search_ms), percentile(search_ms, 95),
         f"query embedding p50 {p50(embed_ms):.1f} ms"],
        ["baseline: bare index work", p50(base_ms), percentile(base_ms, 95),
         "BM25 + dense + fusion, vector given"],
        ["baseline: query on torch", p50(torch_search_ms) if torch_search_ms else None,
         percentile(torch_search_ms, 95) if torch_search_ms else None,
         "the same searches, query embedded by sentence-transformers"],
        ["search + rerank", p50(rerank_ms) if rerank_ms else None,
         percentile(rerank_ms, 95) if rerank_ms else None, rerank_note],
        ["baseline: rerank on torch", p50(torch_rerank_ms) if torch_rerank_ms else None,
         percentile(torch_rerank_ms, 95) if torch_rerank_ms else None,
         "the same cross-encoder on torch (30 queries)"],
        ["answer (extractive, miss)", p50(miss_ms), percentile(miss_ms, 95), ""],
        ["answer cache hit (repeat)", p50(hit_ms), percentile(hit_ms, 95), ""],
    ]  # fmt: skip
    rep.table(
        f"Query latency on {name} (ms, one at a time, ACL filter on)",
        ["path", "p50", "p95", "notes"],
        rows,
    )
    rep.table(
        "Search as a caller permitted 1%, 10% or all chunks (hybrid, query vector given, ms): "
        "BM25 statistics over the permitted chunks (after) vs the whole collection (before)",
        ["permitted", "before p50", "after p50", "ratio"],
        [[w, c["before_p50_ms"], c["after_p50_ms"], c["ratio"]] for w, c in acl_costs.items()],
    )
    rep.table(
        "Semantic cache on SciFact claims",
        ["threshold", "paraphrase hits", "false hits", "guard rejections"],
        cache_rows,
    )
    rep.final(result)


def cache_quality(
    svc: Ragstack, ds: BeirDataset, n_claims: int
) -> tuple[list[list[Cell]], dict[str, object]]:
    claims = sorted(set(ds.queries.values()))
    pairs = twins(claims)
    rng = random.Random(0)
    chosen = rng.sample(claims, min(n_claims, len(claims)))
    embed = svc.c.embedder.embed
    probes_para = [(i, p) for i, c in enumerate(chosen) for p in paraphrases(c)]
    probes_miss = [(i, kind, m) for i, c in enumerate(chosen) for kind, m in near_misses(c)]
    twin_probes = [(a, b) for a, b in pairs]
    cvecs = embed(chosen)
    pvecs = embed([p for _, p in probes_para])
    mvecs = embed([m for *_, m in probes_miss])
    tvecs = (
        embed([b for _, b in twin_probes])
        if twin_probes
        else np.zeros((0, cvecs.shape[1]), np.float32)
    )
    avecs = embed([a for a, _ in twin_probes]) if twin_probes else tvecs
    rows: list[list[Cell]] = []
    summary: dict[str, object] = {}
    for threshold in (0.8, 0.85, 0.9, 0.95):
        hits = false_hits = rejected = 0
        # the matching logic of SemanticCache, over all cached claims at once
        sims = pvecs @ cvecs.T
        for k, (i, p) in enumerate(probes_para):
            j = int(np.argmax(sims[k]))
            if sims[k, j] >= threshold and near_miss(p, chosen[j]) is None:
                hits += j == i
                false_hits += j != i
        msims = mvecs @ cvecs.T
        total_miss = len(probes_miss) + len(twin_probes)
        for k, (_i, _kind, m) in enumerate(probes_miss):
            j = int(np.argmax(msims[k]))
            if msims[k, j] >= threshold:
                if near_miss(m, chosen[j]) is None:
                    false_hits += 1
                else:
                    rejected += 1
        for k, (a, b) in enumerate(twin_probes):
            s = float(tvecs[k] @ avecs[k])
            if s >= threshold:
                if near_miss(b, a) is None:
                    false_hits += 1
                else:
                    rejected += 1
        hit_rate = hits / len(probes_para)
        false_rate = false_hits / (total_miss + len(probes_para))
        rows.append([threshold, hit_rate, false_rate, rejected])
        if abs(threshold - svc.settings.cache_threshold) < 1e-9:
            summary = {
                "cache_threshold": threshold,
                "cache_paraphrase_hit_rate": hit_rate,
                "cache_false_hit_rate": false_rate,
                "cache_guard_rejections": rejected,
                "cache_paraphrase_probes": len(probes_para),
                "cache_near_miss_probes": total_miss,
                "scifact_negated_twins": len(twin_probes),
            }
    return rows, summary


if __name__ == "__main__":
    main()
