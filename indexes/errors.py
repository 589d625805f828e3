"""Errors raised by the ``indexes`` library.

The tree (every class is importable from ``indexes``)::

    IndexesError                      base of everything this library raises on purpose
    ├── InvalidInputError(ValueError)  a caller handed us something unusable
    │   ├── DimensionMismatchError     vectors or queries of the wrong width
    │   ├── NonFiniteVectorError       NaN or infinity in vectors or queries
    │   └── DuplicateIdError           an id given twice, or added while already present
    └── IndexStorageError              an index directory cannot be read or written
        ├── CorruptIndexError          manifest or data files missing, unreadable or inconsistent
        └── ManifestMismatchError      the manifest is fine but not what the caller expected
                                       (backend, metric, dimension, format version, analyzer)
"""

from __future__ import annotations


class IndexesError(Exception):
    """Base class of every error this library raises deliberately."""


class InvalidInputError(IndexesError, ValueError):
    """The caller passed ids, vectors, texts or parameters that cannot be used."""


class DimensionMismatchError(InvalidInputError):
    """Vectors or queries do not have the index's dimension."""


class NonFiniteVectorError(InvalidInputError):
    """A vector or query contains NaN or an infinity."""


class DuplicateIdError(InvalidInputError):
    """An id appears twice in one call, or ``add`` was given an id the index already holds."""


class IndexStorageError(IndexesError):
    """An index directory could not be written or read."""


class CorruptIndexError(IndexStorageError):
    """The manifest or a data file is missing, unreadable or inconsistent with the manifest."""


class ManifestMismatchError(IndexStorageError):
    """The stored index is valid but is not the index the caller asked for."""

    def __init__(self, field: str, expected: object, found: object, path: str) -> None:
        self.field = field
        self.expected = expected
        self.found = found
        self.path = path
        super().__init__(
            f"index at {path}: manifest field {field!r} is {found!r}, expected {expected!r}"
        )
