"""The two seams of the library: ``VectorIndex`` and ``LexicalIndex``.

Ids are the caller's non-negative integers (ragstack's chunk ids); ``score`` is always
higher-is-better. ``allow`` restricts a search to permitted ids *inside* the index: a
filtered search returns the best ``top_k`` among the permitted ids whenever that many
exist, never a post-filtered shorter list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy.typing as npt

from indexes.types import FloatArray, IdArray, IdFilter, LexicalHits, Metric, SearchResult


@runtime_checkable
class VectorIndex(Protocol):
    """Approximate or exact nearest-neighbour search over float32 vectors."""

    backend: str

    @property
    def dim(self) -> int: ...

    @property
    def metric(self) -> Metric: ...

    def __len__(self) -> int: ...

    def __contains__(self, item: object) -> bool: ...

    def ids(self) -> IdArray:
        """Every id currently in the index, sorted."""
        ...

    def vectors(self, ids: npt.ArrayLike) -> FloatArray:
        """The stored vectors of ``ids`` (unit length for cosine); ``KeyError`` if one is
        absent. For integrity checks against the source of truth."""
        ...

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add new ids; raises ``DuplicateIdError`` if one is present already."""
        ...

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add ids, replacing the vectors of those already present."""
        ...

    def remove(self, ids: npt.ArrayLike) -> int:
        """Remove ids; absent ids are ignored. Returns how many were removed."""
        ...

    def search(
        self, queries: npt.ArrayLike, top_k: int, allow: IdFilter | None = None
    ) -> SearchResult: ...

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (see ``indexes.persist``)."""
        ...

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None, metric: Metric | None = None) -> Self:
        """Open a saved index; a manifest that differs from ``dim``/``metric`` is an error."""
        ...


@runtime_checkable
class LexicalIndex(Protocol):
    """Keyword search over texts, ranked by BM25."""

    backend: str

    def __len__(self) -> int: ...

    def __contains__(self, item: object) -> bool: ...

    def ids(self) -> IdArray: ...

    def terms(self, ids: npt.ArrayLike) -> list[dict[str, int]]:
        """Each id's analysed terms and their frequencies as indexed (``{}`` if absent)."""
        ...

    def add(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None: ...

    def upsert(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None: ...

    def remove(self, ids: npt.ArrayLike) -> int: ...

    def search(self, query: str, top_k: int, allow: IdFilter | None = None) -> LexicalHits: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> Self: ...
