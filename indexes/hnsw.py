"""``HnswIndex``: hnswlib's HNSW graph behind the ``VectorIndex`` protocol.

Ids are hnswlib labels directly, so an unfiltered search adds only validation to
hnswlib's own call. A full-precision copy of the vectors is kept beside the graph
(hnswlib's ``get_items`` costs ~27 us a vector), for exact scans of permitted subsets.

Filtered search picks a strategy by how many ids are permitted:

* few (``<= exact_limit``): exact scan over just those vectors - exact recall, and
  cheaper than a graph walk that must skip almost every node;
* more: ask the graph for ``top_k / fraction * 2`` neighbours and keep the permitted
  ones, growing the request four-fold while fewer than ``top_k`` survive, and finishing
  with the exact scan if the request reaches ``overfetch_limit``. (hnswlib's in-graph
  filter calls back into Python for every visited node: measured 20-100x slower.)

Either way the best ``top_k`` permitted ids come back whenever that many exist.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import hnswlib
import numpy as np
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


class HnswIndex:
    backend = "hnsw"

    def __init__(
        self,
        dim: int,
        metric: Metric = "cosine",
        *,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        seed: int = 100,
        exact_limit: int = 4096,
        overfetch_limit: int = 4096,
        threads: int = 1,
    ) -> None:
        self._prep = VectorPrep(dim, metric)
        self.params: dict[str, int] = {
            "m": m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "seed": seed,
        }
        self.exact_limit = exact_limit
        self.overfetch_limit = overfetch_limit
        self.threads = threads
        self._store = VectorStore(dim)
        self._index = self._new_graph(1024)

    def _new_graph(self, capacity: int) -> Any:
        graph = hnswlib.Index(space="ip", dim=self.dim)
        graph.init_index(
            max_elements=capacity,
            ef_construction=self.params["ef_construction"],
            M=self.params["m"],
            random_seed=self.params["seed"],
        )
        graph.set_ef(self.params["ef_search"])
        return graph

    @property
    def dim(self) -> int:
        return self._prep.dim

    @property
    def metric(self) -> Metric:
        return self._prep.metric

    @property
    def ef_search(self) -> int:
        return self.params["ef_search"]

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._index.set_ef(int(value))
        self.params["ef_search"] = int(value)

    def raw(self) -> Any:
        """The underlying ``hnswlib.Index`` (for benchmarks comparing against it)."""
        return self._index

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item: object) -> bool:
        return item in self._store

    def ids(self) -> IdArray:
        return self._store.sorted_ids().copy()

    # -- writes -----------------------------------------------------------------------------

    def _graph_insert(self, ids: IdArray, vecs: FloatArray) -> None:
        if ids.size == 0:
            return
        need = self._index.element_count + ids.size
        cap = self._index.get_max_elements()
        if need > cap:
            self._index.resize_index(max(need, cap * 2))
        # hnswlib updates a present label in place and revives a deleted one.
        self._index.add_items(vecs, ids, num_threads=-1)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        self._store.add(id_arr, vecs)  # raises DuplicateIdError before the graph changes
        self._graph_insert(id_arr, vecs)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        old = self._store.present(id_arr)
        self._store.set(id_arr[old], vecs[old])
        self._store.add(id_arr[~old], vecs[~old])
        self._graph_insert(id_arr, vecs)

    def remove(self, ids: npt.ArrayLike) -> int:
        id_arr = check_ids(ids)
        present = id_arr[self._store.present(id_arr)]
        for i in present.tolist():
            self._index.mark_deleted(i)
        return self._store.remove(present)

    # -- search -----------------------------------------------------------------------------

    def search(
        self, queries: npt.ArrayLike, top_k: int, allow: IdFilter | None = None
    ) -> SearchResult:
        q = self._prep.queries(queries, top_k)
        n = len(self._store)
        if allow is None and n >= top_k:
            try:
                labels, dist = self._index.knn_query(q, k=top_k, num_threads=self.threads)
                np.subtract(1.0, dist, out=dist)  # distance 1 - ip -> score ip
                return SearchResult(dist, labels.view(np.int64))
            except RuntimeError:  # deletions left fewer than top_k reachable: scan exactly
                return pad_result(self._store.scan(q, top_k), top_k)
        if allow is None:
            return pad_result(self._store.scan(q, top_k), top_k)
        return pad_result([self._filtered(row[None, :], top_k, allow) for row in q], top_k)

    def _filtered(self, q: FloatArray, top_k: int, allow: IdFilter) -> tuple[FloatArray, IdArray]:
        n = len(self._store)
        if len(allow) > self.exact_limit and n:
            fraction = min(1.0, len(allow) / n)
            fetch = min(n, math.ceil(top_k / fraction * 2) + 10)
            while fetch <= self.overfetch_limit:
                try:
                    labels, dist = self._index.knn_query(q, k=fetch, num_threads=1)
                except RuntimeError:
                    break
                ids = labels[0].view(np.int64)
                keep = allow.mask(ids)
                if int(keep.sum()) >= top_k:
                    return (1.0 - dist[0][keep])[:top_k], ids[keep][:top_k]
                if fetch == n:
                    break
                fetch = min(n, fetch * 4)
        return self._store.scan(q, top_k, self._store.rows_of(allow))[0]

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        def build(gen: Path, _shared: Path) -> Manifest:
            self._index.save_index(str(gen / "graph.bin"))
            save_array(gen / "ids.npy", self._store.ids)
            save_array(gen / "vectors.npy", self._store.vectors)
            return Manifest(
                backend=self.backend,
                metric=self.metric,
                dim=self.dim,
                count=len(self),
                # the filtered-search limits too, so a loaded index searches as the saved one
                params={
                    **self.params,
                    "exact_limit": self.exact_limit,
                    "overfetch_limit": self.overfetch_limit,
                },
                files={
                    "graph": f"{gen.name}/graph.bin",
                    "ids": f"{gen.name}/ids.npy",
                    "vectors": f"{gen.name}/vectors.npy",
                },
            )

        write_index_dir(Path(path), build)

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None, metric: Metric | None = None) -> Self:
        path = Path(path)
        m = read_manifest(path, backend=cls.backend, expect={"dim": dim, "metric": metric})
        p = m.params

        def limit(key: str) -> int:
            value = p.get(key)
            return 4096 if value is None else int(value)

        index = cls(
            VectorPrep.manifest_dim(m),
            VectorPrep.manifest_metric(m),
            m=int(p.get("m") or 16),
            ef_construction=int(p.get("ef_construction") or 200),
            ef_search=int(p.get("ef_search") or 64),
            seed=int(p.get("seed") or 100),
            exact_limit=limit("exact_limit"),
            overfetch_limit=limit("overfetch_limit"),
        )
        ids = load_array(path / m.files["ids"]).astype(np.int64)
        vecs = load_array(path / m.files["vectors"]).astype(np.float32)
        if ids.shape[0] != m.count or vecs.shape != (m.count, index.dim):
            raise CorruptIndexError(f"index at {path}: data does not match its manifest")
        graph = hnswlib.Index(space="ip", dim=index.dim)
        try:
            graph.load_index(str(path / m.files["graph"]))
        except RuntimeError as exc:
            raise CorruptIndexError(f"cannot read HNSW graph at {path}: {exc}") from exc
        graph.set_ef(index.params["ef_search"])
        index._index = graph
        index._store.load_rows(ids, vecs)
        return index
