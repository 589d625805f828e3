"""An in-memory, growable table of (id, float32 vector) rows.

The exact backend is this table plus a matrix product; IVF-PQ keeps one for exact search
before training, for full-precision re-scoring and for exact scans of small permitted sets.
Removal swaps the last row into the hole, so rows stay dense and a scan is one ``matmul``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from indexes.errors import DuplicateIdError
from indexes.types import FloatArray, IdArray, IdFilter, scores_of_rows, top_k_by_score_then_id


class VectorStore:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._vecs: FloatArray = np.empty((max(capacity, 16), dim), dtype=np.float32)
        self._ids: IdArray = np.empty(max(capacity, 16), dtype=np.int64)
        self._n = 0
        self._row: dict[int, int] = {}
        self._sorted: tuple[IdArray, npt.NDArray[np.intp]] | None = None

    def __len__(self) -> int:
        return self._n

    def __contains__(self, item: object) -> bool:
        return isinstance(item, int | np.integer) and int(item) in self._row

    @property
    def ids(self) -> IdArray:
        return self._ids[: self._n]

    @property
    def vectors(self) -> FloatArray:
        return self._vecs[: self._n]

    def sorted_ids(self) -> IdArray:
        return self._sorted_view()[0]

    def _sorted_view(self) -> tuple[IdArray, npt.NDArray[np.intp]]:
        if self._sorted is None:
            order = np.argsort(self.ids, kind="stable")
            self._sorted = (self.ids[order], order)
        return self._sorted

    def _grow(self, need: int) -> None:
        cap = self._vecs.shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        vecs = np.empty((new_cap, self.dim), dtype=np.float32)
        vecs[: self._n] = self._vecs[: self._n]
        ids = np.empty(new_cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        self._vecs, self._ids = vecs, ids

    def present(self, ids: IdArray) -> npt.NDArray[np.bool_]:
        return np.fromiter((i in self._row for i in ids.tolist()), dtype=bool, count=ids.size)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Append rows; ids must be new (checked)."""
        dup = [i for i in ids.tolist() if i in self._row]
        if dup:
            raise DuplicateIdError(f"ids already in the index (use upsert): {dup[:5]}")
        self._grow(self._n + ids.size)
        start = self._n
        self._vecs[start : start + ids.size] = vectors
        self._ids[start : start + ids.size] = ids
        for offset, i in enumerate(ids.tolist()):
            self._row[i] = start + offset
        self._n += ids.size
        self._sorted = None

    def set(self, ids: IdArray, vectors: FloatArray) -> None:
        """Overwrite rows of ids that are present (others must be added)."""
        rows = np.fromiter((self._row[i] for i in ids.tolist()), dtype=np.int64, count=ids.size)
        self._vecs[rows] = vectors

    def remove(self, ids: IdArray) -> int:
        removed = 0
        for i in ids.tolist():
            row = self._row.pop(i, None)
            if row is None:
                continue
            last = self._n - 1
            if row != last:
                moved = int(self._ids[last])
                self._vecs[row] = self._vecs[last]
                self._ids[row] = moved
                self._row[moved] = row
            self._n -= 1
            removed += 1
        if removed:
            self._sorted = None
        return removed

    def get(self, ids: IdArray) -> FloatArray:
        """Vectors of ids that are present (KeyError otherwise)."""
        rows = np.fromiter((self._row[i] for i in ids.tolist()), dtype=np.int64, count=ids.size)
        return self._vecs[rows]

    def rows_of(self, allow: IdFilter) -> npt.NDArray[np.intp]:
        """Rows whose id is permitted (vectorised over the sorted view)."""
        sorted_ids, order = self._sorted_view()
        if sorted_ids.size == 0 or len(allow) == 0:
            return np.empty(0, dtype=np.intp)
        wanted = allow.ids
        pos = np.searchsorted(sorted_ids, wanted)
        pos[pos >= sorted_ids.size] = sorted_ids.size - 1
        hit = sorted_ids[pos] == wanted
        rows: npt.NDArray[np.intp] = order[pos[hit]]
        return rows

    def scan(
        self, queries: FloatArray, top_k: int, rows: npt.NDArray[np.intp] | None = None
    ) -> list[tuple[FloatArray, IdArray]]:
        """Exact inner-product top-k over all rows, or over ``rows`` only."""
        ids = self.ids if rows is None else self._ids[rows]
        if ids.size == 0:
            empty = (np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64))
            return [empty for _ in range(queries.shape[0])]
        if rows is None:
            sims = queries @ self.vectors.T
        else:
            sims = scores_of_rows(self._vecs, rows, queries)
        out = []
        for row in sims:
            best = top_k_by_score_then_id(row, ids, top_k)
            out.append((row[best].astype(np.float32, copy=False), ids[best]))
        return out

    def load_rows(self, ids: IdArray, vectors: FloatArray) -> None:
        self._n = 0
        self._row.clear()
        self._sorted = None
        self.add(ids, vectors)
