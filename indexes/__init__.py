"""``indexes``: vector and lexical indexes with filtered search and atomic persistence.

Reusable on its own: nothing here imports ``ragstack``.

* ``ExactIndex``  - brute force, the oracle
* ``HnswIndex``   - hnswlib HNSW graph
* ``IvfPqIndex``  - faiss IVF-PQ with full-precision re-scoring
* ``Bm25Index``   - incremental, persisted BM25 (see ``indexes.bm25`` for why our own)

All vector backends satisfy ``VectorIndex``; ``Bm25Index`` satisfies ``LexicalIndex``.
``open_vector_index`` opens any saved vector index by the backend its manifest names.
"""

from __future__ import annotations

from pathlib import Path

from indexes.analysis import Analyzer
from indexes.bm25 import Bm25Index
from indexes.errors import (
    CorruptIndexError,
    DimensionMismatchError,
    DuplicateIdError,
    IndexesError,
    IndexStorageError,
    InvalidInputError,
    ManifestMismatchError,
    NonFiniteVectorError,
)
from indexes.exact import ExactIndex
from indexes.hnsw import HnswIndex
from indexes.ivfpq import IvfPqIndex
from indexes.persist import Manifest
from indexes.protocols import LexicalIndex, VectorIndex
from indexes.types import IdFilter, LexicalHits, Metric, SearchResult

VECTOR_BACKENDS: dict[str, type[ExactIndex] | type[HnswIndex] | type[IvfPqIndex]] = {
    ExactIndex.backend: ExactIndex,
    HnswIndex.backend: HnswIndex,
    IvfPqIndex.backend: IvfPqIndex,
}


def open_vector_index(
    path: Path, *, dim: int | None = None, metric: Metric | None = None
) -> VectorIndex:
    """Open a saved vector index of whichever backend its manifest names."""
    from indexes.persist import _read_raw

    backend = _read_raw(Path(path)).backend
    cls = VECTOR_BACKENDS.get(backend)
    if cls is None:
        raise ManifestMismatchError("backend", sorted(VECTOR_BACKENDS), backend, str(path))
    return cls.load(Path(path), dim=dim, metric=metric)


__all__ = [
    "Analyzer",
    "Bm25Index",
    "CorruptIndexError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "ExactIndex",
    "HnswIndex",
    "IdFilter",
    "IndexStorageError",
    "IndexesError",
    "InvalidInputError",
    "IvfPqIndex",
    "LexicalHits",
    "LexicalIndex",
    "Manifest",
    "ManifestMismatchError",
    "Metric",
    "NonFiniteVectorError",
    "SearchResult",
    "VectorIndex",
    "open_vector_index",
]
