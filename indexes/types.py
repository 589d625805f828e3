"""Small value types shared by every backend: id filters, search results, input validation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from indexes.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidInputError,
    NonFiniteVectorError,
)

Metric = Literal["cosine", "ip"]
"""``cosine`` normalises vectors and queries to unit length; ``ip`` uses them as given.

Both are scored by inner product, so ``score`` is always higher-is-better."""

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


class SearchResult(NamedTuple):
    """Results of a batch search: row ``i`` holds the hits of query ``i``, best first.

    Both arrays have shape ``(n_queries, top_k)``. When fewer than ``top_k`` permitted
    vectors exist, the tail of a row is padded with id ``-1`` and score ``-inf``.
    """

    scores: FloatArray
    ids: IdArray

    def hits(self, row: int) -> list[tuple[int, float]]:
        """The ``(id, score)`` pairs of one query, padding removed."""
        ids = self.ids[row]
        keep = ids >= 0
        return list(zip(ids[keep].tolist(), self.scores[row][keep].tolist(), strict=True))


class LexicalHits(NamedTuple):
    """Results of one lexical query, best first; only real hits, no padding."""

    scores: FloatArray
    ids: IdArray


def unique_sorted(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``np.unique(values)`` (sorted, distinct) by sorting and comparing neighbours. numpy
    2.4's ``np.unique`` hashes instead, which measured 40-140x slower on integer arrays of
    90k-1M values (1M int64: 938 ms against 6.8 ms), and search paths call it per query."""
    out = np.sort(values)
    if out.size < 2:
        return out
    keep = np.empty(out.size, dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


class IdFilter:
    """The set of ids a search may return (how ACLs reach the index layer).

    Holds a sorted array of unique ids, so membership tests on whole arrays of
    candidates are one vectorised ``searchsorted``. Build it once per request.
    """

    __slots__ = ("__weakref__", "_ids", "_set")

    def __init__(self, ids: Iterable[int] | npt.NDArray[np.integer]) -> None:
        arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        if arr.ndim != 1:
            raise InvalidInputError("IdFilter takes a one-dimensional collection of ids")
        ordered = arr.size < 2 or bool((arr[1:] > arr[:-1]).all())  # ids from SQL often are
        self._ids: IdArray = arr.copy() if ordered else unique_sorted(arr)
        self._set: frozenset[int] | None = None

    @property
    def ids(self) -> IdArray:
        """The permitted ids, sorted and unique (do not modify)."""
        return self._ids

    def __len__(self) -> int:
        return int(self._ids.size)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer):
            return False
        pos = int(np.searchsorted(self._ids, item))
        return pos < self._ids.size and int(self._ids[pos]) == int(item)

    def mask(self, ids: IdArray) -> npt.NDArray[np.bool_]:
        """Boolean mask of which entries of ``ids`` are permitted."""
        if self._ids.size == 0:
            return np.zeros(ids.shape, dtype=bool)
        pos = np.searchsorted(self._ids, ids)
        pos[pos >= self._ids.size] = self._ids.size - 1
        found: npt.NDArray[np.bool_] = self._ids[pos] == ids
        return found

    def as_set(self) -> frozenset[int]:
        """The ids as a Python set (built once, for callbacks that test one id at a time)."""
        if self._set is None:
            self._set = frozenset(self._ids.tolist())
        return self._set


def check_ids(ids: npt.ArrayLike) -> IdArray:
    """Validate a batch of ids: one-dimensional, integral, non-negative, unique."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidInputError(f"ids must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"ids must be integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if out.size and int(out.min()) < 0:
        raise InvalidInputError("ids must be non-negative integers")
    if unique_sorted(out).size != out.size:
        values, counts = np.unique(out, return_counts=True)
        dup = values[counts > 1][:5].tolist()
        raise DuplicateIdError(f"ids given more than once in one call: {dup}")
    return out


def check_vectors(vectors: npt.ArrayLike, dim: int, *, what: str = "vectors") -> FloatArray:
    """Validate a ``(n, dim)`` batch and return it as C-contiguous float32."""
    arr = np.asarray(vectors)
    if arr.ndim != 2:
        raise InvalidInputError(f"{what} must be a 2-D array (n, {dim}), got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(f"{what} have dimension {arr.shape[1]}, the index has {dim}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise NonFiniteVectorError(f"{what} contain NaN or infinite values")
    return out


def normalize(vectors: FloatArray) -> FloatArray:
    """Unit-normalise rows (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: FloatArray = (vectors / norms).astype(np.float32, copy=False)
    return out


def check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InvalidInputError(f"top_k must be a positive integer, got {top_k!r}")


def top_k_desc(scores: FloatArray, k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` largest scores, best first (``k`` may exceed the length)."""
    n = scores.shape[0]
    if k >= n:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def top_k_by_score_then_id(scores: FloatArray, ids: IdArray, k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` best ``scores``, best first, ties to the lower id: an order
    that depends on the rows alone, never on where other rows sit in the index."""
    if scores.size > k:
        kth = np.partition(-scores, k - 1)[k - 1]
        keep = np.flatnonzero(-scores <= kth)  # the k best and every row tied with the k-th
    else:
        keep = np.arange(scores.size)
    order = np.lexsort((ids[keep], -scores[keep]))[:k]
    return keep[order]


GATHER_BLOCK = 256  # rows gathered per product: small enough to stay in cache, no page faults


def scores_of_rows(
    matrix: FloatArray, rows: npt.NDArray[np.integer], queries: FloatArray
) -> FloatArray:
    """``queries @ matrix[rows].T``, gathering ``GATHER_BLOCK`` rows at a time: a one-shot
    gather of thousands of scattered rows allocates (and faults in) a fresh buffer as large
    as them; blocks come from the allocator's pool and stay in cache. Measured on 1M x 384
    float32 rows: 9,065 rows 1.5 ms instead of 5.4, 90,551 rows 17 ms instead of 43."""
    out = np.empty((queries.shape[0], rows.size), dtype=np.float32)
    for start in range(0, rows.size, GATHER_BLOCK):
        block = rows[start : start + GATHER_BLOCK]
        out[:, start : start + block.size] = queries @ matrix[block].T
    return out


def pad_result(rows: list[tuple[FloatArray, IdArray]], top_k: int) -> SearchResult:
    """Stack per-query ``(scores, ids)`` of varying length into a padded ``SearchResult``."""
    scores = np.full((len(rows), top_k), -np.inf, dtype=np.float32)
    ids = np.full((len(rows), top_k), -1, dtype=np.int64)
    for i, (s, d) in enumerate(rows):
        n = min(top_k, d.shape[0])
        scores[i, :n] = s[:n]
        ids[i, :n] = d[:n]
    return SearchResult(scores, ids)
