"""The pruned top k of ``indexes.bm25_topk`` against scoring every row: the same ids, the same
order, bit-identical float32 scores, on Zipf corpora where pruning does cut the work."""

from __future__ import annotations

import numpy as np
import pytest

from evals.synthetic import Corpus
from indexes import Bm25Index, IdFilter
from indexes.bm25_topk import TermWeights, _candidates, exact_top_k, scatter_scores
from indexes.types import top_k_by_score_then_id


def plain(
    occurrences: list[TermWeights], n: int, ext: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = scatter_scores(occurrences, n)
    rows = np.flatnonzero(scores)
    best = top_k_by_score_then_id(scores[rows], ext[rows], k)
    return scores[rows][best], ext[rows[best]]


def random_terms(rng: np.random.Generator, n: int) -> list[TermWeights]:
    """Terms from very common to rare, weights from a few distinct values (many ties)."""
    terms = []
    for df_share, idf in ((0.9, 0.05), (0.5, 0.7), (0.05, 3.0), (0.002, 6.0), (0.3, 1.2)):
        rows = np.flatnonzero(rng.random(n) < df_share).astype(np.int32)
        tf = rng.integers(1, 4, size=rows.size)
        w = (idf * tf * 2.2 / (tf + 1.2 * rng.choice([0.8, 1.0, 1.3], size=rows.size))).astype(
            np.float32
        )
        terms.append(TermWeights.of(rows, w))
    return terms


@pytest.mark.parametrize("seed", range(6))
def test_pruned_equals_scoring_every_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30_000
    ext = (np.arange(n) * 3 + 7)[rng.permutation(n)].astype(np.int64)  # ids not in row order
    terms = random_terms(rng, n)
    for _ in range(25):
        picks = rng.integers(0, len(terms), size=int(rng.integers(1, 5)))
        occurrences = [terms[i] for i in picks]  # a term may occur twice
        for k in (1, 10, 100, 1000):
            got = exact_top_k(occurrences, n, ext, k)
            want = plain(occurrences, n, ext, k)
            assert got[1].tolist() == want[1].tolist(), (picks, k)
            assert np.array_equal(got[0], want[0]), (picks, k)


def test_pruning_cuts_the_candidates_on_a_zipf_corpus() -> None:
    corpus = Corpus()
    n = 20_000
    index = Bm25Index()
    index.add(np.arange(n), corpus.texts(0, n))
    queries, _vectors = corpus.queries(200)
    view = index._view(None)
    ext, offsets = index._rows_layout()
    sizes = []
    for q in queries:
        occurrences = [view.term(index._vocab.get(t, -1)) for t in index.analyzer(q)]
        cand = _candidates(occurrences, 100)
        matched = np.unique(np.concatenate([np.empty(0, np.int32), *(t.rows for t in occurrences)]))
        if cand is not None and matched.size:
            sizes.append(cand.size / matched.size)
        got = exact_top_k(occurrences, offsets[-1], ext, 100)
        want = plain(occurrences, offsets[-1], ext, 100)
        assert got[1].tolist() == want[1].tolist(), q
        assert np.array_equal(got[0], want[0]), q
    assert np.median(sizes) < 0.2, "most queries score a small share of their matching rows"


def test_filtered_pruned_search_equals_a_twin_on_a_zipf_corpus() -> None:
    corpus = Corpus()
    n = 6_000
    texts = corpus.texts(0, n)
    index = Bm25Index()
    for part in np.array_split(np.arange(n), 5):
        index.add(part * 2, [texts[i] for i in part])
    rng = np.random.default_rng(4)
    allowed = np.sort(rng.choice(n, size=600, replace=False))
    twin = Bm25Index()
    twin.add(allowed * 2, [texts[i] for i in allowed])
    allow = IdFilter(allowed * 2)
    for q in corpus.queries(60)[0]:
        for k in (10, 100):
            got, want = index.search(q, k, allow), twin.search(q, k)
            assert got.ids.tolist() == want.ids.tolist(), q
            assert np.array_equal(got.scores, want.scores), q
