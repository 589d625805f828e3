"""Input validation and normalisation shared by the vector backends."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from indexes.errors import CorruptIndexError, InvalidInputError
from indexes.persist import Manifest
from indexes.types import (
    FloatArray,
    IdArray,
    Metric,
    check_ids,
    check_top_k,
    check_vectors,
    normalize,
)

_F32 = np.dtype(np.float32)


class VectorPrep:
    """Checks ids, vectors and queries against one index's dimension and metric."""

    def __init__(self, dim: int, metric: Metric) -> None:
        if metric not in ("cosine", "ip"):
            raise InvalidInputError(f"metric must be 'cosine' or 'ip', got {metric!r}")
        if not isinstance(dim, int) or dim < 1:
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim
        self.metric: Metric = metric
        self._one_shape = (1, dim)

    def vectors(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> tuple[IdArray, FloatArray]:
        id_arr = check_ids(ids)
        vecs = check_vectors(vectors, self.dim)
        if vecs.shape[0] != id_arr.shape[0]:
            raise InvalidInputError(
                f"{id_arr.shape[0]} ids but {vecs.shape[0]} vectors: they must match"
            )
        return id_arr, normalize(vecs) if self.metric == "cosine" else vecs

    def queries(self, queries: npt.ArrayLike, top_k: int) -> FloatArray:
        """Validated (and for cosine, unit-length) queries; cheap for the common case.

        This is on every search's hot path: a single, already-normalised float32 query
        costs one dot product here (a NaN or infinity makes its squared norm non-finite).
        """
        if not (type(top_k) is int and top_k >= 1):
            check_top_k(top_k)
        if (
            type(queries) is np.ndarray
            and queries.dtype is _F32
            and queries.shape == self._one_shape
        ):
            flat = queries.reshape(-1)
            sq = float(flat.dot(flat))
            if math.isfinite(sq) and (self.metric == "ip" or abs(sq - 1.0) < 1e-5):
                return queries
        q = check_vectors(queries, self.dim, what="queries")
        return normalize(q) if self.metric == "cosine" else q

    @staticmethod
    def manifest_dim(m: Manifest) -> int:
        if not isinstance(m.dim, int) or m.dim < 1:
            raise CorruptIndexError(f"manifest of a {m.backend} index has no valid dim: {m.dim!r}")
        return m.dim

    @staticmethod
    def manifest_metric(m: Manifest) -> Metric:
        if m.metric == "cosine":
            return "cosine"
        if m.metric == "ip":
            return "ip"
        raise CorruptIndexError(f"manifest of a {m.backend} index has unknown metric {m.metric!r}")
