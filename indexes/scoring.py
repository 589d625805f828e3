"""BM25 scoring as small pure functions (after bm25s' ``scoring.py``).

``score(t, d) = idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))``, summed over
the query's terms (a repeated query term counts each time, as in Lucene and rank-bm25).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

IdfKind = Literal["lucene", "robertson"]
IDF_KINDS: tuple[IdfKind, ...] = ("lucene", "robertson")
F64 = npt.NDArray[np.float64]


def idf_lucene(df: F64, n_docs: int) -> F64:
    """Lucene's BM25 idf, ``log(1 + (N - df + 0.5) / (df + 0.5))``: always positive."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def idf_robertson(df: F64, n_docs: int, all_df: F64, epsilon: float = 0.25) -> F64:
    """rank-bm25's ``BM25Okapi`` idf: ``log((N - df + 0.5) / (df + 0.5))``, negative values
    floored at ``epsilon`` times the mean idf over the vocabulary (``all_df``)."""
    idf = np.log((n_docs - df + 0.5) / (df + 0.5))
    return np.where(idf < 0, epsilon * mean_idf_robertson(n_docs, all_df), idf)


def mean_idf_robertson(n_docs: int, all_df: F64) -> float:
    """rank-bm25's ``average_idf``: the mean raw (unfloored) idf over terms with ``df > 0``."""
    live = all_df[all_df > 0]
    return float(np.log((n_docs - live + 0.5) / (live + 0.5)).mean()) if live.size else 0.0


def tf_part(tf: F64, doc_len: F64, avgdl: float, k1: float, b: float) -> F64:
    """The saturated, length-normalised term frequency."""
    return tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * doc_len / avgdl))
