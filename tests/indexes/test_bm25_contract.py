"""Bm25Index: the ``LexicalIndex`` contract, and incremental changes scoring exactly like a rebuild.

The central claim of ``indexes.bm25`` is that adds, removes, upserts and segment merges keep
document frequencies, idf and the average length exact. Every test of that compares against
a fresh index built in one go from only the documents that should be live, for both idf
variants, and (for the Robertson idf) against rank-bm25 itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from indexes import (
    Analyzer,
    Bm25Index,
    CorruptIndexError,
    DuplicateIdError,
    HnswIndex,
    IdFilter,
    IndexesError,
    IndexStorageError,
    InvalidInputError,
    LexicalHits,
    LexicalIndex,
    ManifestMismatchError,
    VectorIndex,
)
from indexes.scoring import IDF_KINDS, IdfKind

# A few very common words (df well above N/2: negative Robertson idf), a medium tier and a
# long tail of rare ones; stopwords, capitals and punctuation that the analyzer must absorb.
COMMON = ["cell", "protein", "study"]
MEDIUM = [
    "gene",
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
    "mouse",
    "signal",
    "pathway",
    "receptor",
    "running",
    "runs",
]
RARE = [f"marker{i}" for i in range(200)]
NOISE = ["the", "of", "and", "The", "OF", "Cell,", "(gene)", "tumors.", "Patients"]


def corpus(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        words = [w for w in COMMON if rng.random() < 0.7]
        words += list(rng.choice(MEDIUM, size=int(rng.integers(0, 12))))
        words += list(rng.choice(RARE, size=int(rng.integers(0, 4))))
        words += list(rng.choice(NOISE, size=int(rng.integers(0, 4))))
        rng.shuffle(words)
        docs.append(" ".join(words))
    docs[0] = ""  # empty: a live document of length 0
    docs[1] = "the of and"  # only stopwords: also length 0
    return docs


QUERIES = [
    "cancer therapy",
    "Immune response to virus infections",
    "gene",
    "heart risk dose dose",  # a repeated term counts twice
    "mouse model of brain signal pathway",
    "patients in a trial",
    "cell protein study",  # common terms only (negative raw Robertson idf)
    "marker3 marker17 tumor",
    "running",
    "marker199 unknownword",
]


def build(
    ids: Sequence[int] | range | npt.NDArray[np.int64],
    texts: Sequence[str],
    idf: IdfKind = "lucene",
    *,
    k1: float = 1.2,
    b: float = 0.75,
    max_segments: int = 8,
) -> Bm25Index:
    index = Bm25Index(idf=idf, k1=k1, b=b, max_segments=max_segments)
    index.add(np.asarray(ids, dtype=np.int64), list(texts))
    return index


def full_ranking(index: Bm25Index, query: str) -> dict[int, float]:
    hits = index.search(query, max(len(index), 1))
    return dict(zip(hits.ids.tolist(), hits.scores.tolist(), strict=True))


def analysed_vocabulary(texts: Sequence[str], analyze: Analyzer | None = None) -> set[str]:
    analyze = analyze or Analyzer()
    return {term for text in texts for term in analyze(text)}


def assert_same_as(index: Bm25Index, reference: Bm25Index, vocabulary: set[str]) -> None:
    """Same documents, same df and idf for every term, same score for every query and doc."""
    assert len(index) == len(reference)
    assert np.array_equal(index.ids(), reference.ids())
    for term in sorted(vocabulary):
        df, idf = index.term_stats(term)
        ref_df, ref_idf = reference.term_stats(term)
        assert df == ref_df, term
        assert idf == pytest.approx(ref_idf, rel=1e-9, abs=1e-12), term
    for query in QUERIES:
        got, want = full_ranking(index, query), full_ranking(reference, query)
        assert got.keys() == want.keys(), query
        docs = sorted(want)
        assert np.allclose([got[d] for d in docs], [want[d] for d in docs], rtol=1e-6, atol=1e-7)


def test_satisfies_protocol() -> None:
    index = Bm25Index()
    assert isinstance(index, LexicalIndex)
    assert index.backend == "bm25"
    assert not isinstance(index, VectorIndex)


# -- add and search ---------------------------------------------------------------------------


def test_add_and_search() -> None:
    index = Bm25Index()
    texts = ["The cat sat on the mat", "Dogs are running fast", "A cat and a dog played"]
    index.add([30, 10, 20], texts)
    assert len(index) == 3 and 10 in index and np.int64(20) in index
    assert 11 not in index and "10" not in index
    assert index.ids().tolist() == [10, 20, 30]
    hits = index.search("cats", 5)
    assert isinstance(hits, LexicalHits)
    assert hits.ids.dtype == np.int64 and hits.scores.dtype == np.float32
    assert set(hits.ids.tolist()) == {30, 20}, "stemming: cats -> cat; only matching docs"
    assert (np.diff(hits.scores) <= 0).all() and (hits.scores > 0).all()
    assert index.search("dog run", 1).ids.tolist() == [10]
    assert index.search("dog", 5).ids.size == 2, "dogs -> dog"
    assert index.search("cat", 1).ids.size == 1, "top_k caps the hits"


@pytest.mark.parametrize("idf", IDF_KINDS)
def test_no_known_terms_means_no_hits(idf: IdfKind) -> None:
    empty = Bm25Index(idf=idf)
    assert empty.search("anything", 5).ids.size == 0 and len(empty) == 0
    index = build(range(50), corpus(50, 1), idf)
    for query in ("", "   ", "the and of a", "?!., --", "zebra", "unknownword xylophone"):
        hits = index.search(query, 10)
        assert hits.ids.size == 0 and hits.scores.size == 0, repr(query)
        assert hits.ids.dtype == np.int64 and hits.scores.dtype == np.float32


def test_unicode_and_accents() -> None:
    index = Bm25Index()
    index.add(
        [1, 2, 3, 4, 5],
        [
            "Un café crème à Paris",
            "tea in London",
            "CAFE NOIR",
            "Crème brûlée, naïve coöperation in Zürich",
            "東京 の 喫茶店 καφές",
        ],
    )
    assert set(index.search("cafe", 5).ids.tolist()) == {1, 3}
    assert set(index.search("café", 5).ids.tolist()) == {1, 3}
    assert set(index.search("CAFÉ", 5).ids.tolist()) == {1, 3}
    assert set(index.search("creme", 5).ids.tolist()) == {1, 4}
    assert index.search("zurich naive", 5).ids.tolist() == [4]
    assert index.search("brulee", 5).ids.tolist() == [4]
    assert index.search("東京", 5).ids.tolist() == [5]
    assert index.search("καφες", 5).ids.tolist() == [5]


def test_analyzer() -> None:
    analyze = Analyzer()
    assert analyze("The Running DOGS of Zürich, and the cats!") == ["run", "dog", "zurich", "cat"]
    assert Analyzer(language=None, stopwords="none")("The Dogs") == ["the", "dogs"]
    assert Analyzer(fold_accents=False)("café") == ["café"]
    assert analyze("") == [] and analyze("a") == []
    with pytest.raises(InvalidInputError):
        Analyzer(stopwords="french")
    with pytest.raises(InvalidInputError):
        Analyzer(language="klingon")


# -- remove and upsert score exactly like a rebuild -------------------------------------------


@pytest.mark.parametrize("idf", IDF_KINDS)
def test_remove_updates_df_and_idf_exactly(idf: IdfKind) -> None:
    texts = corpus(400, 2)
    index = build(range(400), texts, idf)
    removed = np.arange(0, 400, 3)
    assert index.remove(removed) == removed.size
    assert len(index) == 400 - removed.size
    assert index.remove(removed) == 0, "removing absent ids is a no-op"
    assert index.remove([10_000, 10_001]) == 0 and index.remove([]) == 0
    assert index.remove([1, 10_000]) == 1
    removed = np.append(removed, 1)
    for query in QUERIES:
        assert not np.isin(index.search(query, 400).ids, removed).any(), "removed docs never return"
    keep = [i for i in range(400) if i not in set(removed.tolist())]
    rebuilt = build(keep, [texts[i] for i in keep], idf)
    assert_same_as(index, rebuilt, analysed_vocabulary(texts))


def test_removing_every_document_of_a_term() -> None:
    index = build([1, 2, 3], ["zebra cat", "cat dog", "dog bird"])
    index.remove([1])
    assert index.term_stats("zebra") == (0, 0.0), "no document has it any more"
    assert index.search("zebra", 5).ids.size == 0
    assert_same_as(index, build([2, 3], ["cat dog", "dog bird"]), {"zebra", "cat", "dog", "bird"})
    index.remove([2, 3])
    assert len(index) == 0 and index.ids().size == 0 and index.search("dog", 5).ids.size == 0
    index.add([4], ["zebra again"])
    assert index.search("zebra", 5).ids.tolist() == [4]


@pytest.mark.parametrize("idf", IDF_KINDS)
def test_upsert_scores_like_a_rebuild(idf: IdfKind) -> None:
    texts = corpus(300, 3)
    index = build(range(300), texts, idf)
    replacements = corpus(60, 4)
    new_ids = list(range(250, 310))  # 50 present, 10 new
    index.upsert(new_ids, replacements)
    assert len(index) == 310
    final = dict(enumerate(texts))
    final.update(zip(new_ids, replacements, strict=True))
    rebuilt = build(sorted(final), [final[i] for i in sorted(final)], idf)
    assert_same_as(index, rebuilt, analysed_vocabulary(texts + replacements))
    # the old text of an upserted document no longer matches it
    index.upsert([5], ["xylophone quartet"])
    assert index.search("xylophone", 5).ids.tolist() == [5]
    index.upsert([5], ["zither"])
    assert index.search("xylophone", 5).ids.size == 0
    assert index.term_stats("xylophon") == (0, 0.0)


@pytest.mark.parametrize("idf", IDF_KINDS)
def test_random_operations_match_a_rebuild(idf: IdfKind) -> None:
    """Adds, removes, upserts and optimize in random order, with merges forced often."""
    rng = np.random.default_rng(11)
    pool = corpus(600, 5)
    index = Bm25Index(idf=idf, max_segments=3)
    live: dict[int, str] = {}
    next_id = 0
    for step in range(40):
        op = rng.choice(["add", "add", "remove", "upsert", "optimize"])
        if op == "add" or not live:
            n = int(rng.integers(1, 25))
            ids = list(range(next_id, next_id + n))
            next_id += n
            texts = [pool[int(i)] for i in rng.integers(0, len(pool), n)]
            index.add(ids, texts)
            live.update(zip(ids, texts, strict=True))
        elif op == "remove":
            victims = rng.choice(sorted(live), size=min(len(live), int(rng.integers(1, 15))))
            victims = np.unique(victims)
            assert index.remove(victims) == victims.size
            for v in victims.tolist():
                del live[v]
        elif op == "upsert":
            present = rng.choice(sorted(live), size=min(len(live), 5), replace=False)
            ids = [*present.tolist(), next_id]
            next_id += 1
            texts = [pool[int(i)] for i in rng.integers(0, len(pool), len(ids))]
            index.upsert(ids, texts)
            live.update(zip(ids, texts, strict=True))
        else:
            index.optimize()
            assert index.segment_count <= 1
        assert index.segment_count <= 3
        if step % 8 == 7:
            ids = sorted(live)
            reference = build(ids, [live[i] for i in ids], idf)
            assert_same_as(index, reference, analysed_vocabulary(pool))


@pytest.mark.parametrize("idf", IDF_KINDS)
def test_many_small_adds_merge_segments_and_score_like_one_build(idf: IdfKind) -> None:
    texts = corpus(300, 6)
    small = Bm25Index(idf=idf, max_segments=4)
    counts = []
    for start in range(0, 300, 10):
        small.add(list(range(start, start + 10)), texts[start : start + 10])
        counts.append(small.segment_count)
    assert max(counts) <= 4 and min(counts[5:]) < max(counts), "segments were merged"
    bulk = build(range(300), texts, idf)
    vocabulary = analysed_vocabulary(texts)
    assert_same_as(small, bulk, vocabulary)
    small.optimize()
    assert small.segment_count == 1
    assert_same_as(small, bulk, vocabulary)


@pytest.mark.parametrize("remove_first", [False, True])
def test_robertson_idf_matches_rank_bm25(remove_first: bool) -> None:
    """Including terms whose raw idf is negative (floored at 0.25 x the mean idf)."""
    from rank_bm25 import BM25Okapi

    texts = corpus(300, 7)
    index = build(range(300), texts, "robertson", k1=1.5, b=0.75)
    live = list(range(300))
    if remove_first:
        index.remove(list(range(0, 300, 4)))
        live = [i for i in live if i % 4]
    analyze = Analyzer()
    reference = BM25Okapi([analyze(texts[i]) for i in live], k1=1.5, b=0.75)
    n_docs = len(live)
    common_df = [sum(t in analyze(texts[i]) for i in live) for t in analyze(" ".join(COMMON))]
    assert min(common_df) > n_docs / 2, "the corpus has terms with a negative raw idf"
    row_of = {doc: row for row, doc in enumerate(live)}
    for query in QUERIES:
        want = reference.get_scores(analyze(query))
        hits = index.search(query, len(live))
        matching = {row_of[d] for d in live if set(analyze(texts[d])) & set(analyze(query))}
        assert {row_of[d] for d in hits.ids.tolist()} == matching, query
        rows = [row_of[d] for d in hits.ids.tolist()]
        assert np.allclose(hits.scores, want[rows], rtol=1e-5, atol=1e-6), query
    for term in analysed_vocabulary([texts[i] for i in live]):
        assert index.term_stats(term)[1] == pytest.approx(reference.idf[term], rel=1e-9, abs=1e-12)


# -- filtered search --------------------------------------------------------------------------


@pytest.mark.parametrize("idf", IDF_KINDS)
def test_filtered_search_equals_a_twin_that_holds_only_the_permitted(idf: IdfKind) -> None:
    """A filtered search scores with the statistics of the permitted rows alone (document
    frequencies, their number, their mean length): its hits, scores and order are those of
    an index that never held anything else. Nothing the caller gets depends on the rest."""
    texts = corpus(800, 8)
    all_ids = np.arange(800) * 5 + 3  # ids are not row numbers
    index = Bm25Index(idf=idf, max_segments=4)
    for part in np.array_split(np.arange(800), 9):  # several segments, then merges
        index.add(all_ids[part], [texts[i] for i in part])
    gone = np.arange(0, 800, 7)
    index.remove(all_ids[gone])
    live = np.setdiff1d(np.arange(800), gone)
    rng = np.random.default_rng(9)
    for size in (1, 8, 80, 480, live.size):
        allowed = np.sort(rng.choice(live, size=size, replace=False))
        allow = IdFilter(np.concatenate([all_ids[allowed], [1, 2, 10**9]]))  # and strangers
        twin = Bm25Index(idf=idf)
        twin.add(all_ids[allowed], [texts[i] for i in allowed])
        for query in [*QUERIES, "zzzunknownterm", "zzzunknownterm cancer"]:
            for k in (1, 10, 1000):
                got = index.search(query, k, allow)
                want = twin.search(query, k)
                assert got.ids.tolist() == want.ids.tolist(), (size, query, k)
                assert np.array_equal(got.scores, want.scores), (size, query, k)
        for term in sorted(analysed_vocabulary([texts[i] for i in allowed]))[:20]:
            assert index.term_stats(term, allow) == twin.term_stats(term)
    assert index.search("cancer", 10, IdFilter([])).ids.size == 0


def test_scores_do_not_move_when_rows_a_caller_cannot_read_arrive() -> None:
    """The issue's case: a reader's score for a public row must not drop because rows it
    may not read, holding the same word, are added."""
    index = Bm25Index()
    index.add(np.arange(10), [f"public note {i} about budgets" for i in range(10)])
    mine = IdFilter(np.arange(10))
    before = index.search("budgets", 10, mine)
    index.add(np.arange(10, 15), ["hidden budgets budgets budgets"] * 5)
    mine = IdFilter(np.arange(10))  # a new permitted set after the write, as a service builds
    after = index.search("budgets", 10, mine)
    assert after.ids.tolist() == before.ids.tolist()
    assert np.array_equal(after.scores, before.scores)
    assert index.search("budgets", 15).scores[0] != before.scores[0], "unfiltered: all rows"


# -- invalid input ----------------------------------------------------------------------------


def test_invalid_input_raises_and_changes_nothing() -> None:
    index = build([1, 2], ["a document about cells", "another about genes"])
    before = full_ranking(index, "cells genes")
    vocabulary = index.vocabulary_size
    cases: list[tuple[type[IndexesError], Callable[[], object]]] = [
        (DuplicateIdError, lambda: index.add([1], ["again"])),
        (DuplicateIdError, lambda: index.add([3, 1], ["new words here", "again"])),
        (DuplicateIdError, lambda: index.add([3, 3], ["x", "y"])),
        (DuplicateIdError, lambda: index.upsert([2, 2], ["x", "y"])),
        (InvalidInputError, lambda: index.add([3], [b"bytes"])),  # type: ignore[list-item]
        (InvalidInputError, lambda: index.add([3], [None])),  # type: ignore[list-item]
        (InvalidInputError, lambda: index.add([3, 4], ["fine", 7])),  # type: ignore[list-item]
        (InvalidInputError, lambda: index.upsert([1], [["nested"]])),  # type: ignore[list-item]
        (InvalidInputError, lambda: index.add([3], "a bare string")),
        (InvalidInputError, lambda: index.add([3, 4], ["only one"])),
        (InvalidInputError, lambda: index.add([3], ["one", "two"])),
        (InvalidInputError, lambda: index.add([-1], ["negative"])),
        (InvalidInputError, lambda: index.add([1.5], ["float id"])),
        (InvalidInputError, lambda: index.remove([-3])),
        (InvalidInputError, lambda: index.search("x", 0)),
        (InvalidInputError, lambda: index.search("x", -1)),
        (InvalidInputError, lambda: index.search(b"bytes", 3)),  # type: ignore[arg-type]
        (InvalidInputError, lambda: index.search(["list"], 3)),  # type: ignore[arg-type]
        (InvalidInputError, lambda: Bm25Index(idf="nonsense")),  # type: ignore[arg-type]
    ]
    for error, call in cases:
        with pytest.raises(error) as info:
            call()
        assert isinstance(info.value, IndexesError)
    assert index.ids().tolist() == [1, 2] and 3 not in index
    assert index.vocabulary_size == vocabulary, "a refused add leaves the vocabulary alone"
    assert full_ranking(index, "cells genes") == before


# -- persistence ------------------------------------------------------------------------------


def segment_files(path: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (path / "shared").iterdir()}


def test_save_load_and_incremental_persistence(tmp_path: Path) -> None:
    texts = corpus(300, 10)
    target = tmp_path / "bm"
    index = Bm25Index(Analyzer(language="english", stopwords="none"), k1=1.5, b=0.7)
    index.add(list(range(100)), texts[:100])
    index.save(target)
    first = segment_files(target)
    assert len(first) == 1

    loaded = Bm25Index.load(target)
    assert (loaded.k1, loaded.b, loaded.idf) == (1.5, 0.7, "lucene")
    assert loaded.analyzer == index.analyzer
    assert_same_as(loaded, index, analysed_vocabulary(texts, index.analyzer))

    # more documents: a new segment is written, the old one reused untouched
    index.add(list(range(100, 200)), texts[100:200])
    index.remove([0, 1, 150])
    index.save(target)
    second = segment_files(target)
    assert len(second) == 2
    assert {k: v for k, v in second.items() if k in first} == first, "segments written once"
    loaded = Bm25Index.load(target)
    assert len(loaded) == 197 and 150 not in loaded and 0 not in loaded and 199 in loaded
    assert_same_as(loaded, index, analysed_vocabulary(texts, index.analyzer))

    # a loaded index keeps working (new terms extend its vocabulary) and saves incrementally
    loaded.add(list(range(200, 300)), texts[200:])
    loaded.upsert([2], ["brand newterm"])
    loaded.save(target)
    third = segment_files(target)
    assert {k: v for k, v in third.items() if k in second} == second
    index.add(list(range(200, 300)), texts[200:])
    index.upsert([2], ["brand newterm"])
    assert_same_as(
        Bm25Index.load(target),
        index,
        analysed_vocabulary([*texts, "brand newterm"], index.analyzer),
    )

    # optimize merges everything into one new segment; the others are garbage-collected
    loaded.optimize()
    loaded.save(target)
    fourth = segment_files(target)
    assert len(fourth) == 1 and not set(fourth) & set(third)
    assert sorted(p.name for p in target.glob("gen-*")) == ["gen-00000004"]
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "bm25" and manifest["count"] == len(index)
    assert all((target / rel).exists() for rel in manifest["files"].values())
    assert_same_as(
        Bm25Index.load(target),
        index,
        analysed_vocabulary([*texts, "brand newterm"], index.analyzer),
    )


def test_save_load_robertson_and_empty(tmp_path: Path) -> None:
    texts = corpus(120, 12)
    index = build(range(120), texts, "robertson", max_segments=5)
    index.save(tmp_path / "r")
    loaded = Bm25Index.load(tmp_path / "r")
    assert loaded.idf == "robertson" and loaded.max_segments == 5
    assert_same_as(loaded, index, analysed_vocabulary(texts))
    Bm25Index().save(tmp_path / "empty")
    empty = Bm25Index.load(tmp_path / "empty")
    assert len(empty) == 0 and empty.search("cell", 3).ids.size == 0
    empty.add([1], ["cell"])
    assert empty.search("cell", 3).ids.tolist() == [1]


def test_load_errors(tmp_path: Path) -> None:
    index = build([1, 2], ["some text", "more text"])
    index.save(tmp_path / "bm")
    assert len(Bm25Index.load(tmp_path / "bm", expect={"analyzer_language": "english"})) == 2
    with pytest.raises(ManifestMismatchError):
        Bm25Index.load(tmp_path / "bm", expect={"analyzer_language": "german"})
    with pytest.raises(ManifestMismatchError):
        Bm25Index.load(tmp_path / "bm", expect={"k1": 2.0})
    hnsw = HnswIndex(4)
    hnsw.add([1], np.ones((1, 4), np.float32))
    hnsw.save(tmp_path / "hnsw")
    with pytest.raises(ManifestMismatchError):
        Bm25Index.load(tmp_path / "hnsw")
    with pytest.raises(CorruptIndexError):
        Bm25Index.load(tmp_path / "missing")
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(IndexStorageError):
        index.save(tmp_path / "a-file")
    manifest = tmp_path / "bm" / "manifest.json"
    original = manifest.read_text(encoding="utf-8")
    manifest.write_text("{broken", encoding="utf-8")
    with pytest.raises(CorruptIndexError):
        Bm25Index.load(tmp_path / "bm")
    raw = json.loads(original)
    damaged: list[dict[str, object]] = [
        {"count": 5},
        {"params": None},
        {"extra": {}},
        {"files": {"vocab": 1}},
    ]
    for bad in damaged:
        manifest.write_text(json.dumps({**raw, **bad}), encoding="utf-8")
        with pytest.raises(CorruptIndexError):
            Bm25Index.load(tmp_path / "bm")
    manifest.write_text(original, encoding="utf-8")
    gen = tmp_path / "bm" / raw["files"]["live"].split("/")[0]
    for name in ("vocab.json", "live.npz"):
        data = (gen / name).read_bytes()
        (gen / name).write_bytes(b"garbage")
        with pytest.raises(CorruptIndexError):
            Bm25Index.load(tmp_path / "bm")
        (gen / name).write_bytes(data)
    for seg in (tmp_path / "bm" / "shared").iterdir():
        seg.write_bytes(b"garbage")
    with pytest.raises(CorruptIndexError) as info:
        Bm25Index.load(tmp_path / "bm")
    assert isinstance(info.value, IndexStorageError)


def test_crashed_save_keeps_the_previous_index(
    tmp_path: Path, crash: Callable[..., AbstractContextManager[None]]
) -> None:
    texts = corpus(200, 13)
    target = tmp_path / "bm"
    index = build(range(100), texts[:100])
    index.save(target)
    saved = build(range(100), texts[:100])
    index.add(list(range(100, 200)), texts[100:])
    index.remove(list(range(50)))
    vocabulary = analysed_vocabulary(texts)
    for at_write in (1, 2):  # while writing the new segment, or the live masks after it
        with crash(at_write=at_write), pytest.raises(IndexStorageError) as info:
            index.save(target)
        assert isinstance(info.value.__cause__, OSError)
        assert_same_as(Bm25Index.load(target), saved, vocabulary)
    index.save(target)  # the next save recovers from whatever the crashed ones left
    assert sorted(p.name for p in target.glob("gen-*")) == ["gen-00000002"]
    assert not [p for p in (target / "shared").iterdir() if p.suffix != ".npz"]
    assert_same_as(Bm25Index.load(target), index, vocabulary)


def test_concurrent_saves_of_one_directory_all_succeed(tmp_path: Path) -> None:
    """Writers that save the same index at once (two deletes in one API process) each
    complete, and the directory holds a loadable index afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    texts = corpus(200, 10)
    target = tmp_path / "bm"
    indexes = []
    for n in range(6):
        index = Bm25Index(Analyzer(language="english", stopwords="none"))
        index.add(list(range(100 + n)), texts[: 100 + n])
        indexes.append(index)
    with ThreadPoolExecutor(6) as pool:
        for _ in range(3):
            list(pool.map(lambda ix: ix.save(target), indexes))  # raises if a save failed
    assert len(Bm25Index.load(target)) in {100 + n for n in range(6)}
