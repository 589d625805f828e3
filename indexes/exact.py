"""``ExactIndex``: brute-force inner-product search, the oracle for every other backend."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy.typing as npt

from indexes.errors import CorruptIndexError
from indexes.persist import Manifest, load_array, read_manifest, save_array, write_index_dir
from indexes.prep import VectorPrep
from indexes.store import VectorStore
from indexes.types import (
    FloatArray,
    IdArray,
    IdFilter,
    Metric,
    SearchResult,
    check_ids,
    pad_result,
)


class ExactIndex:
    """Exhaustive search; filtered search scans exactly the permitted rows."""

    backend = "exact"

    def __init__(self, dim: int, metric: Metric = "cosine") -> None:
        self._prep = VectorPrep(dim, metric)
        self._store = VectorStore(dim)

    @property
    def dim(self) -> int:
        return self._prep.dim

    @property
    def metric(self) -> Metric:
        return self._prep.metric

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item: object) -> bool:
        return item in self._store

    def ids(self) -> IdArray:
        return self._store.sorted_ids().copy()

    def vectors(self, ids: npt.ArrayLike) -> FloatArray:
        return self._store.get(check_ids(ids)).copy()

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        self._store.add(id_arr, vecs)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        old = self._store.present(id_arr)
        self._store.set(id_arr[old], vecs[old])
        self._store.add(id_arr[~old], vecs[~old])

    def remove(self, ids: npt.ArrayLike) -> int:
        return self._store.remove(check_ids(ids))

    def search(
        self, queries: npt.ArrayLike, top_k: int, allow: IdFilter | None = None
    ) -> SearchResult:
        q = self._prep.queries(queries, top_k)
        rows = None if allow is None else self._store.rows_of(allow)
        return pad_result(self._store.scan(q, top_k, rows), top_k)

    def save(self, path: Path) -> None:
        def build(gen: Path, _shared: Path) -> Manifest:
            save_array(gen / "ids.npy", self._store.ids)
            save_array(gen / "vectors.npy", self._store.vectors)
            rel = gen.name
            return Manifest(
                backend=self.backend,
                metric=self.metric,
                dim=self.dim,
                count=len(self),
                params={},
                files={"ids": f"{rel}/ids.npy", "vectors": f"{rel}/vectors.npy"},
            )

        write_index_dir(Path(path), build)

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None, metric: Metric | None = None) -> Self:
        path = Path(path)
        m = read_manifest(path, backend=cls.backend, expect={"dim": dim, "metric": metric})
        index = cls(VectorPrep.manifest_dim(m), VectorPrep.manifest_metric(m))
        ids = load_array(path / m.files["ids"]).astype("int64")
        vecs = load_array(path / m.files["vectors"]).astype("float32")
        if ids.shape != (m.count,) or vecs.shape != (m.count, index.dim):
            raise CorruptIndexError(f"index at {path}: data does not match its manifest")
        index._store.load_rows(ids, vecs)
        return index
