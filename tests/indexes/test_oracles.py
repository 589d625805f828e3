"""Approximate backends against exact search, BM25 against rank-bm25, on real SciFact data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evals.beir import load_beir, ndcg_at_k
from indexes import Analyzer, Bm25Index, ExactIndex, HnswIndex, IdFilter, IvfPqIndex, VectorIndex


@pytest.fixture(scope="module")
def vectors(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    pre = shared_data / "scifact" / "minilm-l6-v2"
    ids = json.loads((pre / "ids.json").read_text())
    assert len(ids["corpus_ids"]) == 5183
    return np.load(pre / "corpus.npy"), np.load(pre / "queries.npy")[:300]


def recall_at_10(
    index: VectorIndex, exact: ExactIndex, queries: np.ndarray, allows: list[IdFilter] | None = None
) -> float:
    hits = total = 0
    for i, q in enumerate(queries):
        allow = allows[i] if allows else None
        got = index.search(q[None, :], 10, allow).ids[0]
        want = exact.search(q[None, :], 10, allow).ids[0]
        hits += len(set(got.tolist()) & set(want.tolist()))
        total += 10
    return hits / total


@pytest.fixture(scope="module")
def exact(vectors: tuple[np.ndarray, np.ndarray]) -> ExactIndex:
    index = ExactIndex(384)
    index.add(np.arange(len(vectors[0])), vectors[0])
    return index


def test_hnsw_recall(vectors: tuple[np.ndarray, np.ndarray], exact: ExactIndex) -> None:
    docs, queries = vectors
    hnsw = HnswIndex(384)
    hnsw.add(np.arange(len(docs)), docs)
    assert recall_at_10(hnsw, exact, queries) >= 0.95
    rng = np.random.default_rng(0)
    allows = [IdFilter(rng.choice(len(docs), 52, replace=False)) for _ in queries]
    assert recall_at_10(hnsw, exact, queries, allows) >= 0.95


def test_ivfpq_recall(vectors: tuple[np.ndarray, np.ndarray], exact: ExactIndex) -> None:
    docs, queries = vectors
    ivf = IvfPqIndex(384, train_threshold=2000)
    ivf.add(np.arange(len(docs)), docs)
    assert ivf.trained
    rescored = recall_at_10(ivf, exact, queries)
    ivf.rescore = False
    plain = recall_at_10(ivf, exact, queries)
    ivf.rescore = True
    assert rescored >= 0.95
    assert plain < rescored, "re-scoring at full precision must lift PQ recall"
    stats = ivf.memory_stats()
    assert stats["code_bytes_per_vector"] <= 64
    rng = np.random.default_rng(1)
    allows = [IdFilter(rng.choice(len(docs), 52, replace=False)) for _ in queries]
    assert recall_at_10(ivf, exact, queries, allows) >= 0.95


@pytest.fixture(scope="module")
def scifact(shared_data: Path) -> tuple[list[str], list[tuple[str, str]], object]:
    ds = load_beir(shared_data / "scifact")
    return [d.full_text for d in ds.corpus], ds.judged_queries(), ds


def test_bm25_matches_rank_bm25(scifact: tuple[list[str], list[tuple[str, str]], object]) -> None:
    from rank_bm25 import BM25Okapi

    texts, queries, _ds = scifact
    analyze = Analyzer()
    reference = BM25Okapi([analyze(t) for t in texts])
    ours = Bm25Index(idf="robertson", k1=1.5, b=0.75)
    ours.add(np.arange(len(texts)), texts)
    lucene = Bm25Index()
    lucene.add(np.arange(len(texts)), texts)
    overlaps = []
    for _qid, query in queries[:30]:
        ref_scores = reference.get_scores(analyze(query))
        hits = ours.search(query, 10)
        assert np.allclose(hits.scores, ref_scores[hits.ids], rtol=1e-4)
        kth = np.sort(ref_scores)[-10]
        top_ref = set(np.flatnonzero(ref_scores > kth + 1e-6).tolist())
        assert top_ref <= set(hits.ids.tolist()), "identical top-10 up to ties"
        ref_top10 = set(np.argsort(-ref_scores)[:10].tolist())
        overlaps.append(len(ref_top10 & set(lucene.search(query, 10).ids.tolist())) / 10)
    assert float(np.mean(overlaps)) >= 0.9


def test_bm25_scifact_ndcg(scifact: tuple[list[str], list[tuple[str, str]], object]) -> None:
    texts, queries, ds = scifact
    index = Bm25Index()
    index.add(np.arange(len(texts)), texts)
    doc_ids = [d.doc_id for d in ds.corpus]  # type: ignore[attr-defined]
    scores = [
        ndcg_at_k([doc_ids[i] for i in index.search(q, 10).ids], ds.qrels[qid])  # type: ignore[attr-defined]
        for qid, q in queries
    ]
    assert float(np.mean(scores)) >= 0.67
