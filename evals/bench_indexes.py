"""Benchmark of the ``indexes`` library: ``python -m evals.bench_indexes [--json]``.

Vector backends on SciFact (all-MiniLM-L6-v2 embeddings, computed once and cached) and on
a synthetic 100k x 384 set with cluster structure (``evals.synthetic``); BM25 on SciFact
against rank-bm25 and bm25s, and incremental adds on a 100k-document Zipf corpus (ditto).
Every throughput figure is single-query-at-a-time and every ratio compares runs made in this
process, interleaved round by round, so a noisy machine moves both sides alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evals.beir import load_beir, ndcg_at_k, shared_data_dir
from evals.embeddings import dataset_embeddings
from evals.report import Reporter
from evals.synthetic import synthetic_vectors, zipf_texts
from indexes import Bm25Index, ExactIndex, HnswIndex, IdFilter, IvfPqIndex
from indexes.analysis import Analyzer
from ragstack.embedding import SentenceTransformerEmbedder

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
K = 10


def recall(found: I64, truth: I64) -> float:
    hits = sum(
        len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist()))
        for f, t in zip(found, truth, strict=True)
    )
    return hits / max(1, int((truth >= 0).sum()))


def rate(fn: Callable[[int], object], n: int) -> float:
    """Calls per second of ``fn(i)`` over ``i in range(n)``."""
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def paired_rates(
    a: Callable[[int], object], b: Callable[[int], object], n: int, rounds: int = 15
) -> tuple[float, float]:
    """Best-of-``rounds`` rates of two callables over the same ``n`` inputs, in whole passes
    whose order alternates round by round, so machine noise and warm caches favour neither.
    (Timing them call by call in pairs is worse: the second call of a pair runs on caches
    the first one warmed for the same query.)"""
    best_a = best_b = 0.0
    for r in range(rounds):
        if r % 2 == 0:
            best_a = max(best_a, rate(a, n))
            best_b = max(best_b, rate(b, n))
        else:
            best_b = max(best_b, rate(b, n))
            best_a = max(best_a, rate(a, n))
    return best_a, best_b


def bench_vectors(name: str, x: F32, q: F32, rep: Reporter, ivf_threshold: int) -> dict[str, Any]:
    n, dim = x.shape
    ids = np.arange(n, dtype=np.int64)
    exact = ExactIndex(dim)
    exact.add(ids, x)
    truth = exact.search(q, K).ids
    out: dict[str, Any] = {"n": n, "queries": int(q.shape[0])}

    t0 = time.perf_counter()
    hnsw = HnswIndex(dim, m=16, ef_construction=200, ef_search=64)
    hnsw.add(ids, x)
    build_s = time.perf_counter() - t0
    ef = 64
    for ef in (64, 96, 128, 192, 256, 384):  # the smallest ef reaching the recall target
        hnsw.ef_search = ef
        r = recall(hnsw.search(q, K).ids, truth)
        if r >= 0.95:
            break
    import faiss

    raw = hnsw.raw()
    raw_params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
    ours_qps, raw_qps = paired_rates(
        lambda i: hnsw.search(q[i : i + 1], K),
        lambda i: raw.search(q[i : i + 1], K, params=raw_params),
        q.shape[0],
    )
    out["hnsw"] = {
        "recall_at_10": r,
        "qps": ours_qps,
        "raw_faiss_qps": raw_qps,
        "ratio_to_raw": ours_qps / raw_qps,
        "ef_search": ef,
        "m": 16,
        "ef_construction": 200,
        "build_s": build_s,
    }

    t0 = time.perf_counter()
    ivf = IvfPqIndex(dim, train_threshold=ivf_threshold)
    ivf.add(ids, x)
    ivf_build = time.perf_counter() - t0
    ivf.rescore = False
    r_plain = recall(ivf.search(q, K).ids, truth)
    ivf.rescore = True
    r_rescored = recall(ivf.search(q, K).ids, truth)
    ivf_qps = rate(lambda i: ivf.search(q[i : i + 1], K), q.shape[0])
    mem = ivf.memory_stats()
    out["ivfpq"] = {
        "recall_at_10": r_plain,
        "recall_at_10_rescored": r_rescored,
        "bytes_per_vector": mem["compressed_bytes_per_vector"],
        "code_bytes_per_vector": mem["code_bytes_per_vector"],
        "qps": ivf_qps,
        "nlist": ivf.nlist,
        "m": ivf.m,
        "build_s": ivf_build,
    }

    rng = np.random.default_rng(7)
    for label, frac in (("filtered_1pct", 0.01), ("filtered_10pct", 0.10)):
        allows = [
            IdFilter(rng.choice(n, size=max(K, int(n * frac)), replace=False))
            for _ in range(q.shape[0])
        ]
        ftruth = np.stack(
            [exact.search(q[i : i + 1], K, allows[i]).ids[0] for i in range(q.shape[0])]
        )
        row: dict[str, Any] = {}
        for bname, index in (("hnsw", hnsw), ("ivfpq", ivf)):
            found = np.stack(
                [index.search(q[i : i + 1], K, allows[i]).ids[0] for i in range(q.shape[0])]
            )
            qps = rate(
                lambda i, index=index, allows=allows: index.search(  # type: ignore[misc]
                    q[i : i + 1], K, allows[i]
                ),
                q.shape[0],
            )
            row[bname] = {
                "recall_at_10": recall(found, ftruth),
                "qps": qps,
                "always_k": bool((found >= 0).all()),
            }
        out[label] = row

    rep.table(
        f"Vector indexes on {name} ({n:,} x {dim}, {q.shape[0]:,} queries, top-{K}, "
        "one query at a time)",
        ["index", "recall@10", "qps", "reference qps", "ratio", "notes"],
        [
            [
                "HNSW (ours)",
                out["hnsw"]["recall_at_10"],
                ours_qps,
                raw_qps,
                ours_qps / raw_qps,
                f"M=16 efC=200 ef={ef}; reference = raw faiss, same graph & ef",
            ],
            [
                "IVF-PQ",
                r_plain,
                ivf_qps,
                None,
                None,
                f"nlist={ivf.nlist} m={ivf.m}: {mem['compressed_bytes_per_vector']:.1f} B/vector",
            ],
            [
                "IVF-PQ rescored",
                r_rescored,
                ivf_qps,
                None,
                None,
                f"top {K * ivf.rescore_factor} re-scored at fp32",
            ],
            *[
                [
                    f"{b} {lbl.removeprefix('filtered_')} allowed",
                    out[lbl][b]["recall_at_10"],
                    out[lbl][b]["qps"],
                    None,
                    None,
                    f"k always filled: {out[lbl][b]['always_k']}",
                ]
                for lbl in ("filtered_1pct", "filtered_10pct")
                for b in ("hnsw", "ivfpq")
            ],
        ],
    )
    return out


def bench_bm25_scifact(data: Path, rep: Reporter) -> dict[str, Any]:
    import bm25s
    import Stemmer
    from rank_bm25 import BM25Okapi

    ds = load_beir(data)
    texts = [d.full_text for d in ds.corpus]
    doc_ids = np.arange(len(texts), dtype=np.int64)
    queries = list(ds.queries.values())

    t0 = time.perf_counter()
    ours = Bm25Index()
    ours.add(doc_ids, texts)
    ours_build = time.perf_counter() - t0
    scores = []
    for qid, text in ds.judged_queries():
        hits = ours.search(text, K)
        scores.append(ndcg_at_k([ds.corpus[i].doc_id for i in hits.ids], ds.qrels[qid]))
    ndcg = float(np.mean(scores))

    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    bm25s_build = time.perf_counter() - t0

    def bm25s_query(i: int) -> object:
        tokens = bm25s.tokenize(
            [queries[i]], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        return ref.retrieve(tokens, k=K, show_progress=False, n_threads=1)

    ours_qps, bm25s_qps = paired_rates(
        lambda i: ours.search(queries[i], K), bm25s_query, len(queries)
    )
    analyzer = Analyzer()
    okapi = BM25Okapi([analyzer(t) for t in texts])
    n_slow = 50
    rank_qps = rate(lambda i: okapi.get_scores(analyzer(queries[i])), n_slow)
    rep.table(
        f"BM25 on SciFact ({len(texts):,} docs, {len(queries):,} queries one at a time)",
        ["engine", "nDCG@10", "qps", "ratio (ours / it)", "build s"],
        [
            ["ragstack Bm25Index", ndcg, ours_qps, 1.0, ours_build],
            ["bm25s (numpy)", None, bm25s_qps, ours_qps / bm25s_qps, bm25s_build],
            [f"rank-bm25 ({n_slow} queries)", None, rank_qps, ours_qps / rank_qps, None],
        ],
    )
    return {
        "scifact_ndcg_at_10": ndcg,
        "qps": ours_qps,
        "bm25s_qps": bm25s_qps,
        "rank_bm25_qps": rank_qps,
        "ratio_to_rank_bm25": ours_qps / rank_qps,
        "ratio_to_bm25s": ours_qps / bm25s_qps,
    }


def bench_bm25_incremental(n: int, path: Path, rep: Reporter) -> dict[str, Any]:
    base = zipf_texts(n)
    extra = zipf_texts(1000, start=n)
    index = Bm25Index()
    t0 = time.perf_counter()
    index.add(np.arange(n), base)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.save(path)
    save_full_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    index.add(np.arange(n, n + 1000), extra)
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.save(path)
    save_inc_s = time.perf_counter() - t0
    probe = extra[0].split()[-1]
    visible = int(n) in index.search(" ".join(extra[0].split()[:8]), 1000).ids.tolist()

    queries = [" ".join(t.split()[:3]) for t in zipf_texts(300, start=n + 1000)]
    qps = rate(lambda i: index.search(queries[i], K), len(queries))
    rep.table(
        f"BM25 incremental: {n:,} synthetic Zipf documents, then 1,000 more",
        ["step", "seconds", "notes"],
        [
            ["build 100k", build_s, f"{index.vocabulary_size:,} terms"],
            ["save (full)", save_full_s, "segments written once"],
            ["add 1,000 docs", add_s, f"new doc searchable: {visible} ('{probe}')"],
            ["save after add", save_inc_s, "only the new segment + vocabulary + live masks"],
            ["3-word query", 1.0 / qps, f"{qps:,.0f} q/s"],
        ],
    )
    return {
        "add_1000_docs_s": add_s,
        "save_after_add_s": save_inc_s,
        "build_100k_s": build_s,
        "qps_100k_zipf": qps,
        "new_docs_visible": visible,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=shared_data_dir() / "scifact",
        help="BEIR folder for the real-data runs (default: ../shared/data/scifact)",
    )
    parser.add_argument("--synthetic-n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000, help="synthetic queries")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache") / "bench_indexes")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    started = time.perf_counter()

    ds = load_beir(args.data)
    qids = list(ds.queries)
    x_sci, q_sci = dataset_embeddings(SentenceTransformerEmbedder(), ds, qids)
    sci = bench_vectors(f"{ds.name} (MiniLM)", x_sci, q_sci, rep, ivf_threshold=2000)
    x_syn, q_syn = synthetic_vectors(args.synthetic_n, args.queries, 384, seed=11)
    syn = bench_vectors(
        f"synthetic {args.synthetic_n // 1000}k", x_syn, q_syn, rep, ivf_threshold=10_000
    )
    bm25 = bench_bm25_scifact(args.data, rep)
    bm25.update(bench_bm25_incremental(args.synthetic_n, args.work_dir / "bm25", rep))

    def worst(key: str, field: str, backends: tuple[str, ...] = ("hnsw", "ivfpq")) -> float:
        return float(min(r[key][b][field] for r in (sci, syn) for b in backends))

    result = {
        "hnsw": {
            "recall_at_10": min(sci["hnsw"]["recall_at_10"], syn["hnsw"]["recall_at_10"]),
            "qps": syn["hnsw"]["qps"],
            "raw_faiss_qps": syn["hnsw"]["raw_faiss_qps"],
            # qps and raw qps above are the 100k set's; so is this ratio. SciFact's (a 5k index
            # whose ~65 us queries make our ~8 us of validation weigh more) is reported too.
            "ratio_to_raw": syn["hnsw"]["ratio_to_raw"],
            "ratio_to_raw_scifact": sci["hnsw"]["ratio_to_raw"],
        },
        "ivfpq": {
            "recall_at_10": syn["ivfpq"]["recall_at_10"],
            "recall_at_10_rescored": min(
                sci["ivfpq"]["recall_at_10_rescored"], syn["ivfpq"]["recall_at_10_rescored"]
            ),
            "bytes_per_vector": syn["ivfpq"]["bytes_per_vector"],
            "code_bytes_per_vector": syn["ivfpq"]["code_bytes_per_vector"],
        },
        "filtered_1pct": {
            "recall_at_10": worst("filtered_1pct", "recall_at_10"),
            "qps": syn["filtered_1pct"]["hnsw"]["qps"],
        },
        "filtered_10pct": {
            "recall_at_10": worst("filtered_10pct", "recall_at_10"),
            "qps": syn["filtered_10pct"]["hnsw"]["qps"],
        },
        "bm25": bm25,
        "by_dataset": {"scifact": sci, "synthetic": syn},
        "seconds": time.perf_counter() - started,
    }
    rep.say(f"\ntotal {result['seconds']:.0f} s")
    rep.final(result)


if __name__ == "__main__":
    main()
