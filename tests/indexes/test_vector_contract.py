"""One contract, every vector backend: the behaviour ``VectorIndex`` promises.

Backends under test (all over the same 2,000 clustered unit vectors of dimension 32, with
scattered 40-bit ids so that row positions are never mistaken for ids):

* ``exact``            brute force, also the oracle for everything else;
* ``hnsw``             hnswlib graph;
* ``ivfpq-untrained``  IVF-PQ below its (default) training threshold: exact search;
* ``ivfpq-trained``    IVF-PQ trained at 500 vectors (nlist 16, m 8), re-scored.

The two approximate backends are built with ``exact_limit=64``: permitted sets of at most
64 ids are scanned exactly (and must equal the oracle), larger ones go through the graph /
inverted lists (and must reach recall >= 0.9), so both filtered-search strategies run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

import indexes
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
    SearchResult,
    VectorIndex,
    open_vector_index,
)

DIM = 32
N = 2000
K = 10
EXACT_LIMIT = 64
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[], VectorIndex]
    approximate: bool
    exact_limit: int | None  # permitted sets up to this size are scanned exactly

    def scans_exactly(self, allow: IdFilter) -> bool:
        return not self.approximate or (
            self.exact_limit is not None and len(allow) <= self.exact_limit
        )


BACKENDS = {
    b.name: b
    for b in (
        Backend("exact", lambda: ExactIndex(DIM), approximate=False, exact_limit=None),
        Backend(
            "hnsw",
            lambda: HnswIndex(DIM, exact_limit=EXACT_LIMIT),
            approximate=True,
            exact_limit=EXACT_LIMIT,
        ),
        Backend("ivfpq-untrained", lambda: IvfPqIndex(DIM), approximate=False, exact_limit=None),
        Backend(
            "ivfpq-trained",
            lambda: IvfPqIndex(DIM, train_threshold=500, nlist=16, m=8, exact_limit=EXACT_LIMIT),
            approximate=True,
            exact_limit=EXACT_LIMIT,
        ),
    )
}
NAMES = list(BACKENDS)


class Data(NamedTuple):
    ids: I64  # unsorted, unique, up to 2**40
    vecs: F32  # unit length, row i belongs to ids[i]


def unit(x: npt.NDArray[np.float64]) -> F32:
    out: F32 = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def clustered(n: int, seed: int, centers: int = 40) -> F32:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, DIM))
    return unit(c[rng.integers(0, centers, n)] + 0.5 * rng.standard_normal((n, DIM)))


def random_unit(n: int, seed: int) -> F32:
    return unit(np.random.default_rng(seed).standard_normal((n, DIM)))


@pytest.fixture(scope="module", autouse=True)
def faiss_single_thread() -> Iterator[None]:
    """faiss' OpenMP threads busy-wait: on a shared 2-core machine training slows ~15x."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> Data:
    rng = np.random.default_rng(7)
    ids = rng.choice(2**40, size=N, replace=False).astype(np.int64)
    return Data(ids, clustered(N, 1))


def build(spec: Backend, data: Data) -> VectorIndex:
    index = spec.make()
    index.add(data.ids, data.vecs)
    return index


@pytest.fixture(params=NAMES)
def spec(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[str(request.param)]


@pytest.fixture
def index(spec: Backend, data: Data) -> VectorIndex:
    """A fresh filled index, for tests that change it."""
    return build(spec, data)


@pytest.fixture(scope="module", params=NAMES)
def built(request: pytest.FixtureRequest, data: Data) -> tuple[Backend, VectorIndex]:
    """A filled index shared by the read-only tests of one backend."""
    spec = BACKENDS[str(request.param)]
    return spec, build(spec, data)


@pytest.fixture(scope="module")
def oracle(data: Data) -> ExactIndex:
    exact = ExactIndex(DIM)
    exact.add(data.ids, data.vecs)
    return exact


def assert_well_formed(res: SearchResult, n_queries: int, top_k: int) -> None:
    assert res.ids.shape == res.scores.shape == (n_queries, top_k)
    assert res.ids.dtype == np.int64 and res.scores.dtype == np.float32
    pad = res.ids < 0
    assert (res.ids[pad] == -1).all()
    assert np.isneginf(res.scores[pad]).all() and np.isfinite(res.scores[~pad]).all()
    # padding only at the tail of a row, real hits best first
    assert (np.diff(pad.astype(np.int8), axis=1) >= 0).all()
    for row in range(n_queries):
        real = res.scores[row][~pad[row]]
        assert (np.diff(real) <= 1e-6).all(), "scores must be best first"


def assert_same_results(a: SearchResult, b: SearchResult) -> None:
    assert np.array_equal(a.ids, b.ids)
    real = a.ids >= 0
    assert np.allclose(a.scores[real], b.scores[real], atol=1e-6)
    assert np.array_equal(a.scores[~real], b.scores[~real])


# -- the interface ----------------------------------------------------------------------------


def test_satisfies_protocol(spec: Backend) -> None:
    index = spec.make()
    assert isinstance(index, VectorIndex)
    assert isinstance(index.backend, str) and index.backend in indexes.VECTOR_BACKENDS
    assert index.dim == DIM and index.metric == "cosine"
    assert not isinstance(Bm25Index(), VectorIndex)


def test_error_tree() -> None:
    tree: dict[type[IndexesError], tuple[type[IndexesError], ...]] = {
        IndexesError: (InvalidInputError, IndexStorageError),
        InvalidInputError: (DimensionMismatchError, NonFiniteVectorError, DuplicateIdError),
        IndexStorageError: (CorruptIndexError, ManifestMismatchError),
    }
    for parent, children in tree.items():
        for child in children:
            assert issubclass(child, parent) and issubclass(child, IndexesError)
    assert issubclass(InvalidInputError, ValueError)
    for name in indexes.__all__:
        assert hasattr(indexes, name), f"__all__ names {name!r}, which indexes does not define"


def test_id_filter() -> None:
    allow = IdFilter([5, 3, 3, 2**40])
    assert len(allow) == 3 and allow.ids.tolist() == [3, 5, 2**40]
    assert 3 in allow and np.int64(5) in allow and 4 not in allow and "3" not in allow
    mask = allow.mask(np.array([1, 3, 5, 2**40, 2**41], dtype=np.int64))
    assert mask.tolist() == [False, True, True, True, False]
    assert IdFilter([]).mask(np.array([1, 2], dtype=np.int64)).tolist() == [False, False]
    assert IdFilter(np.arange(4)).as_set() == frozenset(range(4))
    with pytest.raises(InvalidInputError):
        IdFilter(np.zeros((2, 2), dtype=np.int64))


# -- add and search ---------------------------------------------------------------------------


def test_vector_finds_itself_first(built: tuple[Backend, VectorIndex], data: Data) -> None:
    spec, index = built
    assert len(index) == N
    assert np.array_equal(index.ids(), np.sort(data.ids)), "ids() is every id, sorted"
    assert int(data.ids[0]) in index and np.int64(data.ids[1]) in index
    assert int(data.ids.max()) + 1 not in index and "x" not in index
    res = index.search(data.vecs, 5)
    assert_well_formed(res, N, 5)
    first = res.ids[:, 0] == data.ids
    if spec.approximate:
        assert first.mean() >= 0.99, f"only {first.mean():.3f} of vectors find themselves first"
    else:
        assert first.all()
    assert np.allclose(res.scores[first, 0], 1.0, atol=1e-4), "cosine of a vector with itself"


def test_scores_are_inner_products_of_the_returned_ids(
    built: tuple[Backend, VectorIndex], data: Data, oracle: ExactIndex
) -> None:
    _spec, index = built
    queries = clustered(50, 99)
    res = index.search(queries, K)
    assert_well_formed(res, 50, K)
    lookup = dict(zip(data.ids.tolist(), range(N), strict=True))
    for q, ids, scores in zip(queries, res.ids, res.scores, strict=True):
        rows = [lookup[i] for i in ids.tolist()]
        assert np.allclose(scores, data.vecs[rows] @ q, atol=1e-4)
    # a batch gives the same answer as one query at a time
    single = [index.search(q[None, :], K) for q in queries[:5]]
    assert np.array_equal(np.vstack([s.ids for s in single]), res.ids[:5])


def test_trained_state(built: tuple[Backend, VectorIndex]) -> None:
    spec, index = built
    if isinstance(index, IvfPqIndex):
        assert index.trained == (spec.name == "ivfpq-trained")


def test_queries_may_be_any_float_array_like(built: tuple[Backend, VectorIndex]) -> None:
    _spec, index = built
    q = clustered(3, 5)
    want = index.search(q, K)
    # float64, lists, non-unit length (cosine normalises) all give the same answer
    assert np.array_equal(index.search(q.astype(np.float64), K).ids, want.ids)
    assert np.array_equal(index.search(q.tolist(), K).ids, want.ids)
    assert np.array_equal(index.search(q * 3.0, K).ids, want.ids)


def test_add_empty_batch_is_a_no_op(index: VectorIndex) -> None:
    before = index.ids()
    index.add(np.empty(0, dtype=np.int64), np.empty((0, DIM), dtype=np.float32))
    index.upsert([], np.empty((0, DIM), dtype=np.float32))
    assert np.array_equal(index.ids(), before)


# -- remove and upsert ------------------------------------------------------------------------


def test_remove(index: VectorIndex, data: Data) -> None:
    rng = np.random.default_rng(3)
    gone = rng.choice(data.ids, size=300, replace=False)
    assert index.remove(gone) == 300
    assert len(index) == N - 300
    assert np.array_equal(index.ids(), np.sort(np.setdiff1d(data.ids, gone)))
    assert all(int(i) not in index for i in gone)
    assert index.remove(gone) == 0, "removing absent ids is a no-op"
    assert index.remove([]) == 0
    absent = int(data.ids.max()) + 1
    assert index.remove([absent, absent + 1]) == 0 and len(index) == N - 300
    survivor = int(np.setdiff1d(data.ids, gone)[0])
    assert index.remove([absent, survivor]) == 1, "only present ids count"
    assert len(index) == N - 301 and survivor not in index
    gone = np.append(gone, survivor)
    # the removed vectors themselves never come back, even as their own nearest neighbour
    rows = np.flatnonzero(np.isin(data.ids, gone))
    res = index.search(data.vecs[rows], K)
    assert_well_formed(res, rows.size, K)
    assert not np.isin(res.ids, gone).any()
    assert (res.ids >= 0).all(), "k hits whenever k vectors remain"
    # nor through a filter that permits them
    allow = IdFilter(np.concatenate([gone, rng.choice(data.ids, 200, replace=False)]))
    res = index.search(data.vecs[rows[:20]], K, allow)
    assert not np.isin(res.ids, gone).any()


def test_remove_everything_then_add_again(index: VectorIndex, data: Data) -> None:
    assert index.remove(data.ids) == N
    assert len(index) == 0 and index.ids().size == 0
    res = index.search(data.vecs[:3], K)
    assert (res.ids == -1).all() and np.isneginf(res.scores).all()
    index.add(data.ids[:5], data.vecs[:5])
    res = index.search(data.vecs[:1], 3)
    assert res.ids[0, 0] == data.ids[0]
    assert set(res.ids[0].tolist()) <= set(data.ids[:5].tolist())


def test_re_add_after_remove(index: VectorIndex, data: Data) -> None:
    target = int(data.ids[42])
    index.remove([target])
    fresh = random_unit(1, 11)
    index.add([target], fresh)
    assert len(index) == N and target in index
    hit = index.search(fresh, 1)
    assert hit.ids[0, 0] == target and hit.scores[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_upsert(index: VectorIndex, data: Data) -> None:
    existing = int(data.ids[10])
    new_id = int(data.ids.max()) + 1
    replacement, other = random_unit(2, 21)
    index.upsert([existing, new_id], np.stack([replacement, other]))
    assert len(index) == N + 1 and new_id in index
    for vec, want in ((replacement, existing), (other, new_id)):
        res = index.search(vec[None, :], 3)
        assert res.ids[0, 0] == want and res.scores[0, 0] == pytest.approx(1.0, abs=1e-4)
    old_neighbours = index.search(data.vecs[10:11], 5).ids[0]
    assert existing not in old_neighbours.tolist(), "the old vector is gone"
    # upserting only present ids leaves the size alone
    index.upsert(data.ids[100:150], data.vecs[150:200])
    assert len(index) == N + 1
    res = index.search(data.vecs[150:200], 2)
    for row, own in enumerate(data.ids[100:150].tolist()):
        assert own in res.ids[row].tolist(), "both ids now hold this vector"
    # upsert revives a removed id
    index.remove([existing])
    index.upsert([existing], data.vecs[10:11])
    assert existing in index and len(index) == N + 1
    assert index.search(data.vecs[10:11], 1).ids[0, 0] == existing


# -- invalid input ----------------------------------------------------------------------------


def invalid_calls(data: Data) -> Iterator[tuple[str, type[IndexesError], Callable[[Any], object]]]:
    new = int(data.ids.max()) + 1
    present = int(data.ids[0])
    v1, v2 = data.vecs[:1], data.vecs[:2]
    nan, inf = v1.copy(), v1.copy()
    nan[0, 3], inf[0, 5] = np.nan, -np.inf
    yield "dup in add", DuplicateIdError, lambda ix: ix.add([new, new], v2)
    yield "present in add", DuplicateIdError, lambda ix: ix.add([new, present], v2)
    yield "dup in upsert", DuplicateIdError, lambda ix: ix.upsert([present, present], v2)
    yield "dup in remove", DuplicateIdError, lambda ix: ix.remove([present, present])
    yield "wide add", DimensionMismatchError, lambda ix: ix.add([new], np.ones((1, DIM + 1)))
    yield "narrow upsert", DimensionMismatchError, lambda ix: ix.upsert([new], np.ones((1, 3)))
    yield "wide query", DimensionMismatchError, lambda ix: ix.search(np.ones((1, DIM + 1)), K)
    yield "nan add", NonFiniteVectorError, lambda ix: ix.add([new], nan)
    yield "inf upsert", NonFiniteVectorError, lambda ix: ix.upsert([present], inf)
    yield "nan query", NonFiniteVectorError, lambda ix: ix.search(nan, K)
    yield "inf query", NonFiniteVectorError, lambda ix: ix.search(inf, K)
    yield "more ids", InvalidInputError, lambda ix: ix.add([new, new + 1], v1)
    yield "more vectors", InvalidInputError, lambda ix: ix.upsert([new], v2)
    yield "negative add", InvalidInputError, lambda ix: ix.add([-1], v1)
    yield "negative upsert", InvalidInputError, lambda ix: ix.upsert([-5], v1)
    yield "negative remove", InvalidInputError, lambda ix: ix.remove([present, -1])
    yield "float ids", InvalidInputError, lambda ix: ix.add([1.5], v1)
    yield "2-D ids", InvalidInputError, lambda ix: ix.add([[new]], v1)
    yield "1-D vectors", InvalidInputError, lambda ix: ix.add([new], v1[0])
    yield "1-D query", InvalidInputError, lambda ix: ix.search(v1[0], K)
    yield "top_k 0", InvalidInputError, lambda ix: ix.search(v1, 0)
    yield "top_k -3", InvalidInputError, lambda ix: ix.search(v1, -3)
    yield "top_k float", InvalidInputError, lambda ix: ix.search(v1, 2.5)
    yield "top_k 0 filtered", InvalidInputError, lambda ix: ix.search(v1, 0, IdFilter([present]))


def test_invalid_input_raises_and_changes_nothing(index: VectorIndex, data: Data) -> None:
    before = index.search(data.vecs[:20], K)
    for what, error, call in invalid_calls(data):
        with pytest.raises(error) as info:
            call(index)
        assert isinstance(info.value, IndexesError), what
        assert len(index) == N, f"{what}: a failed call changed the index"
    assert np.array_equal(index.ids(), np.sort(data.ids))
    assert np.array_equal(index.search(data.vecs[:20], K).ids, before.ids)


@pytest.mark.parametrize("cls", [ExactIndex, HnswIndex, IvfPqIndex])
def test_invalid_construction(cls: type[ExactIndex | HnswIndex | IvfPqIndex]) -> None:
    for dim in (0, -4):
        with pytest.raises(InvalidInputError):
            cls(dim)
    with pytest.raises(InvalidInputError):
        cls(DIM, metric="l2")  # type: ignore[arg-type]


def test_ivfpq_sub_quantisers_must_divide_the_dimension() -> None:
    with pytest.raises(InvalidInputError):
        IvfPqIndex(DIM, m=5)


IP_BACKENDS: dict[str, Callable[[], VectorIndex]] = {
    "exact": lambda: ExactIndex(DIM, metric="ip"),
    "hnsw": lambda: HnswIndex(DIM, metric="ip"),
    "ivfpq-untrained": lambda: IvfPqIndex(DIM, metric="ip"),
    "ivfpq-trained": lambda: IvfPqIndex(DIM, metric="ip", train_threshold=500, nlist=16, m=8),
}


def test_ip_metric_scores_raw_inner_products(spec: Backend, data: Data, tmp_path: Path) -> None:
    """``ip`` keeps vector lengths (cosine would normalise them away)."""
    lengths = np.random.default_rng(6).uniform(0.5, 2.0, size=(N, 1)).astype(np.float32)
    vecs = data.vecs * lengths
    index = IP_BACKENDS[spec.name]()
    assert index.metric == "ip"
    index.add(data.ids, vecs)
    oracle = ExactIndex(DIM, metric="ip")
    oracle.add(data.ids, vecs)
    queries = clustered(30, 12) * 1.5
    got, want = index.search(queries, K), oracle.search(queries, K)
    assert_well_formed(got, 30, K)
    lookup = dict(zip(data.ids.tolist(), range(N), strict=True))
    for q, ids, scores in zip(queries, got.ids, got.scores, strict=True):
        assert np.allclose(scores, vecs[[lookup[i] for i in ids.tolist()]] @ q, atol=1e-4)
    recall = float(np.mean([np.isin(g, w).mean() for g, w in zip(got.ids, want.ids, strict=True)]))
    assert recall >= (0.9 if spec.approximate else 1.0)
    index.save(tmp_path / "ip")
    assert open_vector_index(tmp_path / "ip", metric="ip").metric == "ip"
    with pytest.raises(ManifestMismatchError):
        open_vector_index(tmp_path / "ip", metric="cosine")


# -- padding ----------------------------------------------------------------------------------


def test_empty_index_returns_only_padding(spec: Backend, data: Data) -> None:
    index = spec.make()
    assert len(index) == 0 and index.ids().size == 0 and index.remove([1, 2]) == 0
    for allow in (None, IdFilter([1, 2, 3]), IdFilter([])):
        res = index.search(data.vecs[:2], 4, allow)
        assert_well_formed(res, 2, 4)
        assert (res.ids == -1).all() and np.isneginf(res.scores).all()


def test_top_k_larger_than_the_index(spec: Backend, index: VectorIndex, data: Data) -> None:
    small = spec.make()
    small.add(data.ids[:3], data.vecs[:3])
    res = small.search(data.vecs[:2], 5)
    assert_well_formed(res, 2, 5)
    assert sorted(res.ids[0, :3].tolist()) == sorted(data.ids[:3].tolist())
    assert (res.ids[:, 3:] == -1).all() and np.isneginf(res.scores[:, 3:]).all()
    # the same on the full (for ivfpq-trained: trained) index, after some removals
    index.remove(data.ids[:100])
    res = index.search(data.vecs[200:202], N + 7)
    assert_well_formed(res, 2, N + 7)
    for row in res.ids:
        assert np.array_equal(np.sort(row[: N - 100]), np.sort(data.ids[100:]))
        assert (row[N - 100 :] == -1).all()


def test_ivfpq_returns_k_even_when_probed_lists_hold_fewer() -> None:
    """Few probed lists (nprobe 2 of 64) hold fewer than top_k vectors: probe more."""
    vecs = clustered(3000, 4)
    index = IvfPqIndex(DIM, train_threshold=1000, nlist=64, m=8, nprobe=2)
    index.add(np.arange(3000), vecs)
    assert index.trained
    for top_k in (300, 3000, 3100):
        res = index.search(vecs[:3], top_k)
        assert_well_formed(res, 3, top_k)
        assert ((res.ids >= 0).sum(axis=1) == min(top_k, 3000)).all()
    # filtered, through faiss' selector (exact_limit 0): the same widening of the probe
    index.exact_limit = 0
    exact = ExactIndex(DIM)
    exact.add(np.arange(3000), vecs)
    rng = np.random.default_rng(4)
    for size in (5, 300, 3000):
        allow = IdFilter(rng.choice(3000, size=size, replace=False))
        got = index.search(vecs[10:15], K, allow).ids
        want = exact.search(vecs[10:15], K, allow).ids
        real = got[got >= 0]
        assert np.isin(real, allow.ids).all() and real.size == 5 * min(K, size)
        assert np.isin(real, want).mean() >= 0.9


# -- filtered search --------------------------------------------------------------------------

# name -> (fraction of the index's ids permitted, ids not in the index also permitted)
ALLOW_KINDS: dict[str, tuple[float, int]] = {
    "one-id": (1 / N, 0),
    "1%": (0.01, 0),
    "10%": (0.10, 0),
    "60%": (0.60, 0),
    "100%": (1.0, 0),
    "10%+unknown": (0.10, 300),
    "5-ids+unknown": (5 / N, 100),
    "only-unknown": (0.0, 50),
    "nothing": (0.0, 0),
}


def allow_set(data: Data, kind: str, rng: np.random.Generator) -> tuple[IdFilter, I64]:
    """A random permitted set and the ids of it that are in the index."""
    fraction, unknown = ALLOW_KINDS[kind]
    present = rng.choice(data.ids, size=round(N * fraction), replace=False).astype(np.int64)
    absent = int(data.ids.max()) + 1 + rng.choice(10**6, size=unknown, replace=False)
    return IdFilter(np.concatenate([present, absent])), present


@pytest.mark.parametrize("kind", list(ALLOW_KINDS))
def test_filtered_search_returns_best_k_permitted(
    built: tuple[Backend, VectorIndex], oracle: ExactIndex, data: Data, kind: str
) -> None:
    spec, index = built
    rng = np.random.default_rng(list(ALLOW_KINDS).index(kind))
    queries = clustered(20, 31)
    recalls = []
    for top_k in (K, 50):
        for q in queries:
            allow, present = allow_set(data, kind, rng)
            got = index.search(q[None, :], top_k, allow)
            want = oracle.search(q[None, :], top_k, allow)
            assert_well_formed(got, 1, top_k)
            real = got.ids[0][got.ids[0] >= 0]
            assert np.isin(real, present).all(), "only permitted ids, only ids in the index"
            assert real.size == min(top_k, present.size), "k hits whenever k are permitted"
            if spec.scans_exactly(allow):
                assert np.array_equal(got.ids, want.ids)
                assert np.allclose(got.scores[0, : real.size], want.scores[0, : real.size])
            elif real.size:
                truth = want.ids[0][want.ids[0] >= 0]
                recalls.append(np.isin(real, truth).mean())
    if recalls:
        assert float(np.mean(recalls)) >= 0.9, f"filtered recall {np.mean(recalls):.3f}"


def test_filtered_search_after_removals(index: VectorIndex, data: Data) -> None:
    rng = np.random.default_rng(8)
    gone = rng.choice(data.ids, size=800, replace=False)
    index.remove(gone)
    live = np.setdiff1d(data.ids, gone)
    for size in (3, 40, 300, 1500):
        allow_ids = rng.choice(data.ids, size=size, replace=False)  # removed ones included
        permitted_live = np.intersect1d(allow_ids, live)
        res = index.search(clustered(10, size), K, IdFilter(allow_ids))
        for row in res.ids:
            real = row[row >= 0]
            assert np.isin(real, permitted_live).all()
            assert real.size == min(K, permitted_live.size)


def test_hnsw_scanned_sets_keep_their_gathered_vectors_within_the_budget(
    oracle: ExactIndex, data: Data
) -> None:
    """A permitted set scanned again is scored from its contiguous copy: the same answer as the
    exact oracle every time, copies evicted least recently used first when over the budget, and
    none of them outliving a write."""
    rng = np.random.default_rng(12)
    sets = [IdFilter(rng.choice(data.ids, size=50, replace=False)) for _ in range(3)]
    per_set = 50 * DIM * 4
    index = HnswIndex(DIM, exact_limit=EXACT_LIMIT, scan_cache_bytes=2 * per_set)
    index.add(data.ids, data.vecs)
    queries = clustered(6, 41)

    def check(allow: IdFilter) -> None:
        for q in queries:
            got, want = index.search(q[None, :], K, allow), oracle.search(q[None, :], K, allow)
            assert np.array_equal(got.ids, want.ids)
            assert np.allclose(got.scores, want.scores, atol=1e-6)

    def kept() -> list[bool]:
        return [index._permitted(a).gathered is not None for a in sets]

    check(sets[0])
    check(sets[0])
    check(sets[1])
    assert kept()[:2] == [True, True]
    check(sets[2])  # over the budget: the least recently used copy (sets[0]'s) goes
    assert [index._filters[id(a)][1].gathered is not None for a in sets] == [False, True, True]
    check(sets[0])
    gone = sets[0].ids[:25]
    index.remove(gone)  # a write: no copy survives it, and removed ids are never hits
    assert all(entry.gathered is None for _ref, entry in index._filters.values())
    for q in queries:
        hits = index.search(q[None, :], K, sets[0]).ids[0]
        assert not np.isin(hits, gone).any()
    too_big = HnswIndex(DIM, exact_limit=EXACT_LIMIT, scan_cache_bytes=per_set - 1)
    too_big.add(data.ids, data.vecs)
    for q in queries:  # a set larger than the whole budget is scanned in place, as exactly
        assert np.array_equal(too_big.search(q[None, :], K, sets[1]).ids,
                              oracle.search(q[None, :], K, sets[1]).ids)  # fmt: skip
    assert too_big._permitted(sets[1]).gathered is None


# -- persistence ------------------------------------------------------------------------------


def gens(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("gen-*"))


def test_save_load_round_trip(index: VectorIndex, data: Data, tmp_path: Path) -> None:
    index.remove(data.ids[:50])
    index.upsert(data.ids[50:60], random_unit(10, 5))
    target = tmp_path / "ix"
    index.save(target)
    cls = type(index)
    loaded = cls.load(target, dim=DIM, metric="cosine")
    assert type(loaded) is cls and loaded.dim == DIM and loaded.metric == "cosine"
    assert len(loaded) == len(index) == N - 50
    assert np.array_equal(loaded.ids(), index.ids())
    queries = np.vstack([clustered(30, 17), random_unit(10, 5)])
    assert_same_results(loaded.search(queries, K), index.search(queries, K))
    rng = np.random.default_rng(2)
    for size in (5, 300):
        allow = IdFilter(rng.choice(data.ids, size=size, replace=False))
        assert_same_results(loaded.search(queries, K, allow), index.search(queries, K, allow))
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == cls.backend and manifest["dim"] == DIM
    assert manifest["metric"] == "cosine" and manifest["count"] == N - 50
    assert manifest["format_version"] == indexes.persist.FORMAT_VERSION
    reopened = open_vector_index(target)
    assert type(reopened) is cls and np.array_equal(reopened.ids(), index.ids())
    # the loaded index is a working index, not a read-only snapshot
    extra = int(data.ids.max()) + 1
    fresh = random_unit(1, 77)
    loaded.add([extra], fresh)
    loaded.remove(data.ids[60:70])
    assert loaded.search(fresh, 1).ids[0, 0] == extra and len(loaded) == N - 50 + 1 - 10


def test_empty_index_round_trip(spec: Backend, data: Data, tmp_path: Path) -> None:
    spec.make().save(tmp_path / "empty")
    loaded = open_vector_index(tmp_path / "empty")
    assert len(loaded) == 0
    assert (loaded.search(data.vecs[:1], 3).ids == -1).all()
    loaded.add(data.ids[:2], data.vecs[:2])
    assert loaded.search(data.vecs[:1], 1).ids[0, 0] == data.ids[0]


def test_saving_twice_keeps_only_the_newest_generation(
    index: VectorIndex, data: Data, tmp_path: Path
) -> None:
    target = tmp_path / "ix"
    index.save(target)
    assert gens(target) == ["gen-00000001"]
    index.remove(data.ids[:10])
    index.save(target)
    assert gens(target) == ["gen-00000002"], "only the newest generation is kept"
    assert not list(target.glob("*.tmp")), "no temporary manifest left behind"
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["generation"] == 2 and manifest["count"] == N - 10
    assert all(rel.startswith("gen-00000002/") for rel in manifest["files"].values())
    assert len(type(index).load(target)) == N - 10


def test_load_with_other_expectations_is_a_mismatch(
    index: VectorIndex, tmp_path: Path, spec: Backend
) -> None:
    index.save(tmp_path / "ix")
    cls = type(index)
    with pytest.raises(ManifestMismatchError) as info:
        cls.load(tmp_path / "ix", dim=DIM + 1)
    assert info.value.field == "dim" and info.value.found == DIM
    with pytest.raises(ManifestMismatchError) as info:
        cls.load(tmp_path / "ix", metric="ip")
    assert info.value.field == "metric"
    with pytest.raises(ManifestMismatchError):
        open_vector_index(tmp_path / "ix", dim=DIM * 2)
    # another backend's directory
    bm = Bm25Index()
    bm.add([1], ["hello world"])
    bm.save(tmp_path / "bm25")
    with pytest.raises(ManifestMismatchError) as info:
        cls.load(tmp_path / "bm25")
    assert info.value.field == "backend"
    with pytest.raises(ManifestMismatchError):
        open_vector_index(tmp_path / "bm25")
    other = ExactIndex if cls is not ExactIndex else HnswIndex
    with pytest.raises(ManifestMismatchError):
        other.load(tmp_path / "ix")
    with pytest.raises(ManifestMismatchError):
        Bm25Index.load(tmp_path / "ix")
    # a future format version is refused, not misread
    mpath = tmp_path / "ix" / "manifest.json"
    raw = json.loads(mpath.read_text(encoding="utf-8"))
    mpath.write_text(json.dumps({**raw, "format_version": 99}), encoding="utf-8")
    with pytest.raises(ManifestMismatchError):
        cls.load(tmp_path / "ix")


def rewrite(manifest: Path, **fields: object) -> None:
    """Valid JSON, but with some fields replaced."""
    raw = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**raw, **fields}), encoding="utf-8")


MANIFEST_DAMAGE: dict[str, Callable[[Path], object]] = {
    "not json": lambda p: p.write_text("{not json", encoding="utf-8"),
    "empty file": lambda p: p.write_bytes(b""),
    "json list": lambda p: p.write_text("[1, 2]", encoding="utf-8"),
    "missing field": lambda p: p.write_text('{"backend": "exact"}', encoding="utf-8"),
    "unknown field": lambda p: rewrite(p, surprise=1),
    "binary": lambda p: p.write_bytes(b"\xff\xfe\x00garbage"),
    "deleted": lambda p: p.unlink(),
    "files not a mapping": lambda p: rewrite(p, files=["gen-00000001/ids.npy"]),
    "file path not a string": lambda p: rewrite(p, files={"ids": 5}),
    "params null": lambda p: rewrite(p, params=None),
    "generation a string": lambda p: rewrite(p, generation="1"),
    "count a string": lambda p: rewrite(p, count="50"),
    "dim a float": lambda p: rewrite(p, dim=32.0),
    "count disagrees": lambda p: rewrite(p, count=49),
    "names a missing file": lambda p: rewrite(p, files={"ids": "gen-00000001/nope.npy"}),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_missing_or_corrupt_manifest(
    spec: Backend, data: Data, tmp_path: Path, damage: str
) -> None:
    index = spec.make()
    index.add(data.ids[:50], data.vecs[:50])
    cls = type(index)
    with pytest.raises(CorruptIndexError):
        cls.load(tmp_path / "never-saved")
    index.save(tmp_path / "ix")
    MANIFEST_DAMAGE[damage](tmp_path / "ix" / "manifest.json")
    with pytest.raises(CorruptIndexError) as info:
        cls.load(tmp_path / "ix")
    assert isinstance(info.value, IndexStorageError)
    with pytest.raises(CorruptIndexError):
        open_vector_index(tmp_path / "ix")
    index.save(tmp_path / "ix")  # a damaged directory can be saved over
    assert np.array_equal(cls.load(tmp_path / "ix").ids(), index.ids())


def test_save_where_no_directory_can_be(index: VectorIndex, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    for target in (tmp_path / "a-file", tmp_path / "a-file" / "below"):
        with pytest.raises(IndexStorageError):
            index.save(target)
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "not a directory"


def test_missing_or_corrupt_data_files(index: VectorIndex, tmp_path: Path) -> None:
    cls = type(index)
    target = tmp_path / "ix"
    index.save(target)
    files = sorted((target / "gen-00000001").iterdir())
    assert files
    for victim in files:
        index.save(target)
        gen = sorted(target.glob("gen-*"))[-1]
        path = gen / victim.name
        original = path.read_bytes()
        path.write_bytes(b"garbage" * 3)
        with pytest.raises(CorruptIndexError):
            cls.load(target)
        path.write_bytes(original[: len(original) // 2])
        with pytest.raises(CorruptIndexError):
            cls.load(target)
        path.unlink()
        with pytest.raises(CorruptIndexError):
            cls.load(target)
    # well-formed arrays that disagree with the manifest
    index.save(target)
    gen = sorted(target.glob("gen-*"))[-1]
    for name in ("vectors.npy", "labels.npy", "live.npy"):
        if (gen / name).exists():
            array = np.load(gen / name)
            np.save(gen / name, array[:-1])
            with pytest.raises(CorruptIndexError):
                cls.load(target)
            np.save(gen / name, array)


def test_crashed_save_keeps_the_previous_index(
    index: VectorIndex,
    data: Data,
    tmp_path: Path,
    crash: Callable[..., AbstractContextManager[None]],
) -> None:
    target = tmp_path / "ix"
    cls = type(index)
    index.save(target)
    saved_ids = index.ids()
    queries = data.vecs[:10]
    saved_results = index.search(queries, K)
    index.remove(data.ids[:300])
    index.upsert(data.ids[300:310], random_unit(10, 3))

    with crash(), pytest.raises(IndexStorageError) as info:
        index.save(target)
    assert isinstance(info.value.__cause__, OSError)

    loaded = cls.load(target)
    assert np.array_equal(loaded.ids(), saved_ids), "the previous index, unchanged"
    assert_same_results(loaded.search(queries, K), saved_results)
    # the next save recovers from whatever the crashed one left behind
    index.save(target)
    assert gens(target) == ["gen-00000002"]
    assert np.array_equal(cls.load(target).ids(), index.ids())


def test_crashed_first_save_leaves_no_index(
    index: VectorIndex, tmp_path: Path, crash: Callable[..., AbstractContextManager[None]]
) -> None:
    with crash(), pytest.raises(IndexStorageError):
        index.save(tmp_path / "ix")
    with pytest.raises(CorruptIndexError):
        type(index).load(tmp_path / "ix")
