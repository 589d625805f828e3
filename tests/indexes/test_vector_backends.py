"""One contract, every vector backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import indexes.persist
from indexes import (
    Bm25Index,
    CorruptIndexError,
    DimensionMismatchError,
    DuplicateIdError,
    ExactIndex,
    HnswIndex,
    IdFilter,
    IndexesError,
    IndexStorageError,
    InvalidInputError,
    IvfPqIndex,
    ManifestMismatchError,
    NonFiniteVectorError,
    VectorIndex,
    open_vector_index,
)

DIM = 32
N = 2000


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((40, DIM))
    x = centers[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, DIM))
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


Factory = Callable[[], VectorIndex]
BACKENDS: dict[str, Factory] = {
    "exact": lambda: ExactIndex(DIM),
    "hnsw": lambda: HnswIndex(DIM, ef_search=128),
    "ivfpq-untrained": lambda: IvfPqIndex(DIM),
    "ivfpq-trained": lambda: IvfPqIndex(DIM, train_threshold=500, nlist=16, m=8),
}
APPROXIMATE = {"hnsw", "ivfpq-trained"}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(N, 1)


@pytest.fixture
def filled(backend: str, data: np.ndarray) -> VectorIndex:
    index = BACKENDS[backend]()
    index.add(np.arange(N), data)
    return index


def test_satisfies_protocol(backend: str) -> None:
    assert isinstance(BACKENDS[backend](), VectorIndex)


def test_vector_finds_itself(filled: VectorIndex, data: np.ndarray) -> None:
    res = filled.search(data[:50], 5)
    assert res.ids.shape == (50, 5)
    assert (res.ids[:, 0] == np.arange(50)).mean() >= 0.98
    assert np.all(np.diff(res.scores, axis=1) <= 1e-6), "scores must be best first"
    assert len(filled) == N
    assert 7 in filled and N + 1 not in filled


def test_trained_state(backend: str, filled: VectorIndex) -> None:
    if backend.startswith("ivfpq"):
        assert isinstance(filled, IvfPqIndex)
        assert filled.trained == (backend == "ivfpq-trained")


def test_remove(filled: VectorIndex, data: np.ndarray) -> None:
    gone = np.arange(0, 200)
    assert filled.remove(gone) == 200
    assert filled.remove(gone) == 0, "removing absent ids is a no-op"
    assert len(filled) == N - 200
    res = filled.search(data[:200], 10)
    assert not np.isin(res.ids, gone).any()
    assert np.array_equal(filled.ids(), np.arange(200, N))


def test_upsert(filled: VectorIndex, data: np.ndarray) -> None:
    target = data[1500]
    filled.upsert([3, N + 5], np.stack([target, data[10]]))
    assert len(filled) == N + 1
    hits = filled.search(target[None, :], 3).ids[0].tolist()
    assert 3 in hits and 1500 in hits


def test_re_add_after_remove(filled: VectorIndex, data: np.ndarray) -> None:
    filled.remove([42])
    filled.add([42], data[42:43])
    assert filled.search(data[42:43], 1).ids[0, 0] == 42


def test_errors(filled: VectorIndex, data: np.ndarray) -> None:
    with pytest.raises(DuplicateIdError):
        filled.add([1], data[:1])
    with pytest.raises(DuplicateIdError):
        filled.add([N + 1, N + 1], data[:2])
    with pytest.raises(DimensionMismatchError):
        filled.add([N + 2], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(DimensionMismatchError):
        filled.search(np.ones((1, DIM - 1), np.float32), 3)
    bad = data[:1].copy()
    bad[0, 3] = np.nan
    with pytest.raises(NonFiniteVectorError):
        filled.add([N + 3], bad)
    bad[0, 3] = np.inf
    with pytest.raises(NonFiniteVectorError):
        filled.search(bad, 3)
    with pytest.raises(InvalidInputError):
        filled.add([N + 4, N + 5], data[:1])
    with pytest.raises(InvalidInputError):
        filled.add([-1], data[:1])
    with pytest.raises(InvalidInputError):
        filled.search(data[:1], 0)
    for err in (
        DuplicateIdError,
        DimensionMismatchError,
        NonFiniteVectorError,
        InvalidInputError,
        ManifestMismatchError,
        CorruptIndexError,
    ):
        assert issubclass(err, IndexesError)
    assert len(filled) == N, "failed calls change nothing"


def test_empty_index_and_k_larger_than_index(backend: str, data: np.ndarray) -> None:
    index = BACKENDS[backend]()
    res = index.search(data[:2], 4)
    assert (res.ids == -1).all() and np.isneginf(res.scores).all()
    index.add([10, 11, 12], data[:3])
    res = index.search(data[:1], 5)
    assert sorted(res.ids[0, :3].tolist()) == [10, 11, 12]
    assert (res.ids[0, 3:] == -1).all() and np.isneginf(res.scores[0, 3:]).all()


@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.1, 0.6, 1.0])
def test_filtered_search_returns_best_k_permitted(
    backend: str, filled: VectorIndex, data: np.ndarray, fraction: float
) -> None:
    rng = np.random.default_rng(5)
    oracle = ExactIndex(DIM)
    oracle.add(np.arange(N), data)
    queries = clustered(30, 9)
    recalls = []
    for q in queries:
        allowed = rng.choice(N, size=max(1, int(N * fraction)), replace=False)
        allow = IdFilter(np.concatenate([allowed, [N + 100, N + 200]]))  # unknown ids too
        got = filled.search(q[None, :], 10, allow).ids[0]
        want = oracle.search(q[None, :], 10, allow).ids[0]
        real = got[got >= 0]
        assert np.isin(real, allowed).all(), "only permitted ids"
        assert real.size == min(10, allowed.size), "k results whenever k permitted exist"
        recalls.append(len(set(real.tolist()) & set(want[want >= 0].tolist())) / real.size)
    if backend in APPROXIMATE and fraction > 0.01:
        assert float(np.mean(recalls)) >= 0.9
    else:
        assert float(np.mean(recalls)) == 1.0


def test_save_load_round_trip(
    backend: str, filled: VectorIndex, data: np.ndarray, tmp_path: Path
) -> None:
    filled.remove([5, 6])
    filled.save(tmp_path / "ix")
    filled.save(tmp_path / "ix")
    gens = sorted(p.name for p in (tmp_path / "ix").glob("gen-*"))
    assert gens == ["gen-00000002"], "only the newest generation is kept"
    loaded = type(filled).load(tmp_path / "ix", dim=DIM, metric="cosine")
    assert np.array_equal(loaded.ids(), filled.ids())
    a, b = filled.search(data[:20], 5), loaded.search(data[:20], 5)
    assert np.array_equal(a.ids, b.ids)
    assert np.allclose(a.scores, b.scores, atol=1e-6)
    reopened = open_vector_index(tmp_path / "ix")
    assert type(reopened) is type(filled) and len(reopened) == N - 2


def test_load_mismatch_and_corruption(backend: str, filled: VectorIndex, tmp_path: Path) -> None:
    filled.save(tmp_path / "ix")
    cls = type(filled)
    with pytest.raises(ManifestMismatchError):
        cls.load(tmp_path / "ix", dim=DIM + 1)
    with pytest.raises(ManifestMismatchError):
        cls.load(tmp_path / "ix", metric="ip")
    bm = Bm25Index()
    bm.add([1], ["hello"])
    bm.save(tmp_path / "bm")
    with pytest.raises(ManifestMismatchError):
        cls.load(tmp_path / "bm")
    with pytest.raises(CorruptIndexError):
        cls.load(tmp_path / "nothing-here")
    (tmp_path / "ix" / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptIndexError):
        cls.load(tmp_path / "ix")


def test_crashed_save_keeps_previous_index(
    backend: str,
    filled: VectorIndex,
    data: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    filled.save(tmp_path / "ix")
    before = filled.search(data[:5], 5).ids
    filled.remove(np.arange(100))

    def crash(_root: Path) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(indexes.persist, "fsync_tree", crash)
    with pytest.raises(IndexStorageError):
        filled.save(tmp_path / "ix")
    monkeypatch.undo()
    loaded = type(filled).load(tmp_path / "ix")
    assert len(loaded) == N
    assert np.array_equal(loaded.search(data[:5], 5).ids, before)
    filled.save(tmp_path / "ix")  # the next save recovers from the leftover generation
    assert len(type(filled).load(tmp_path / "ix")) == N - 100
