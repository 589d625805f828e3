"""Bm25Index: incremental changes score exactly like a rebuild; persistence; filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexes import (
    Analyzer,
    Bm25Index,
    CorruptIndexError,
    DuplicateIdError,
    HnswIndex,
    IdFilter,
    InvalidInputError,
    LexicalIndex,
    ManifestMismatchError,
)

WORDS = [
    "cell",
    "gene",
    "protein",
    "cancer",
    "tumor",
    "immune",
    "response",
    "therapy",
    "patient",
    "trial",
    "dose",
    "risk",
    "blood",
    "brain",
    "heart",
    "liver",
    "virus",
    "infection",
    "vaccine",
    "model",
    "mouse",
    "study",
    "result",
    "effect",
    "increase",
    "decrease",
    "signal",
    "pathway",
    "receptor",
]


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))) for _ in range(n)]


QUERIES = [
    "cancer therapy",
    "immune response to virus infection",
    "gene",
    "heart risk dose",
    "mouse model of brain signal pathway",
    "patients in a trial",
    "unknownword",
]


def ranking(index: Bm25Index, query: str, k: int = 50) -> dict[int, float]:
    hits = index.search(query, k)
    return dict(zip(hits.ids.tolist(), hits.scores.tolist(), strict=True))


def assert_same_scores(a: Bm25Index, b: Bm25Index) -> None:
    for q in QUERIES:
        ra, rb = ranking(a, q, 1000), ranking(b, q, 1000)
        assert ra.keys() == rb.keys(), q
        for doc, score in ra.items():
            assert score == pytest.approx(rb[doc], rel=1e-5), (q, doc)


def test_protocol() -> None:
    assert isinstance(Bm25Index(), LexicalIndex)


def test_search_basics() -> None:
    index = Bm25Index()
    index.add(
        [10, 11, 12], ["The cat sat on the mat", "Dogs are running fast", "A cat and a dog played"]
    )
    hits = index.search("cats", 5)
    assert set(hits.ids.tolist()) == {10, 12}, "stemming: cats -> cat"
    assert np.all(np.diff(hits.scores) <= 0)
    assert index.search("the and a", 5).ids.size == 0, "stopwords only: no hits"
    assert index.search("", 5).ids.size == 0
    assert index.search("zebra", 5).ids.size == 0
    assert len(index) == 3 and 11 in index


def test_accents_fold() -> None:
    index = Bm25Index()
    index.add([1, 2], ["Un café crème à Paris", "tea in London"])
    assert index.search("cafe creme", 2).ids.tolist() == [1]


def test_remove_and_upsert_score_like_a_rebuild() -> None:
    texts = corpus(400)
    index = Bm25Index()
    index.add(np.arange(400), texts)
    removed = np.arange(0, 400, 3)
    assert index.remove(removed) == removed.size
    assert index.remove(removed) == 0
    new_texts = corpus(50, seed=7)
    index.upsert(np.arange(1, 100, 2), new_texts)
    final = {i: t for i, t in enumerate(texts) if i % 3}
    final.update(zip(range(1, 100, 2), new_texts, strict=True))
    rebuilt = Bm25Index()
    rebuilt.add(np.array(sorted(final)), [final[i] for i in sorted(final)])
    assert len(index) == len(rebuilt)
    assert np.array_equal(index.ids(), rebuilt.ids())
    for term in ("cancer", "gene", "virus"):
        assert index.term_stats(term) == pytest.approx(rebuilt.term_stats(term))
    assert_same_scores(index, rebuilt)


def test_many_small_adds_merge_segments() -> None:
    texts = corpus(300, seed=3)
    small = Bm25Index(max_segments=4)
    for start in range(0, 300, 10):
        small.add(np.arange(start, start + 10), texts[start : start + 10])
    assert small.segment_count <= 4
    bulk = Bm25Index()
    bulk.add(np.arange(300), texts)
    assert_same_scores(small, bulk)
    small.optimize()
    assert small.segment_count == 1
    assert_same_scores(small, bulk)


def test_filtered_search_is_exact() -> None:
    texts = corpus(500, seed=4)
    index = Bm25Index()
    index.add(np.arange(500), texts)
    rng = np.random.default_rng(1)
    for q in QUERIES[:-1]:
        allowed = rng.choice(500, size=40, replace=False)
        full = index.search(q, 500)
        keep = np.isin(full.ids, allowed)
        want_scores = full.scores[keep][:10]
        got = index.search(q, 10, IdFilter(allowed))
        assert np.isin(got.ids, allowed).all()
        assert got.ids.size == want_scores.size
        assert np.allclose(got.scores, want_scores), "the best permitted scores (ties aside)"


def test_save_load_and_incremental_persistence(tmp_path: Path) -> None:
    texts = corpus(200, seed=5)
    index = Bm25Index(k1=1.5, b=0.7)
    index.add(np.arange(100), texts[:100])
    index.save(tmp_path / "bm")
    first_segments = set((tmp_path / "bm" / "shared").iterdir())
    index.add(np.arange(100, 200), texts[100:])
    index.remove([0, 1])
    index.save(tmp_path / "bm")
    second_segments = set((tmp_path / "bm" / "shared").iterdir())
    assert first_segments <= second_segments, "segments written once, reused"
    loaded = Bm25Index.load(tmp_path / "bm")
    assert loaded.k1 == 1.5 and loaded.b == 0.7 and len(loaded) == 198
    assert_same_scores(index, loaded)
    loaded.optimize()
    loaded.save(tmp_path / "bm")
    assert len(list((tmp_path / "bm" / "shared").iterdir())) == 1, "unreferenced segments removed"
    assert_same_scores(index, Bm25Index.load(tmp_path / "bm"))


def test_load_errors(tmp_path: Path) -> None:
    index = Bm25Index()
    index.add([1], ["some text"])
    index.save(tmp_path / "bm")
    with pytest.raises(ManifestMismatchError):
        Bm25Index.load(tmp_path / "bm", expect={"analyzer_language": "german"})
    hnsw = HnswIndex(4)
    hnsw.add([1], np.ones((1, 4), np.float32))
    hnsw.save(tmp_path / "h")
    with pytest.raises(ManifestMismatchError):
        Bm25Index.load(tmp_path / "h")
    with pytest.raises(CorruptIndexError):
        Bm25Index.load(tmp_path / "missing")
    for seg in (tmp_path / "bm" / "shared").iterdir():
        seg.write_bytes(b"garbage")
    with pytest.raises(CorruptIndexError):
        Bm25Index.load(tmp_path / "bm")


def test_input_errors() -> None:
    index = Bm25Index()
    index.add([1], ["a document"])
    with pytest.raises(DuplicateIdError):
        index.add([1], ["again"])
    with pytest.raises(DuplicateIdError):
        index.add([2, 2], ["x", "y"])
    with pytest.raises(InvalidInputError):
        index.add([3], [b"bytes"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        index.add([3, 4], ["only one"])
    with pytest.raises(InvalidInputError):
        index.search("x", 0)
    with pytest.raises(InvalidInputError):
        Bm25Index(idf="nonsense")  # type: ignore[arg-type]


def test_analyzer_matches_lucene_style() -> None:
    analyze = Analyzer()
    assert analyze("The Running DOGS of Zürich, and the cats!") == ["run", "dog", "zurich", "cat"]
    assert Analyzer(language=None, stopwords="none")("The Dogs") == ["the", "dogs"]
