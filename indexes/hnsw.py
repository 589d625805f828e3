"""``HnswIndex``: hnswlib's HNSW graph behind the ``VectorIndex`` protocol.

Ids are hnswlib labels directly, so a search adds no id translation to hnswlib's own
call. Filtered search picks a strategy by how many ids are permitted:

* few permitted ids (``<= exact_limit``): exact scan over just those vectors - exact
  recall, and cheaper than a graph walk that must skip ~all nodes;
* most ids permitted (fraction ``>= overfetch_fraction``): ask the graph for more
  than ``top_k`` and drop the rest, retrying with the in-graph filter if too few survive;
* in between: hnswlib's in-graph filter with ``ef`` raised for the selectivity, falling
  back to the exact scan if the graph walk cannot fill ``top_k``.

Either way the best ``top_k`` permitted ids come back whenever that many exist.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import hnswlib
import numpy as np
import numpy.typing as npt

from indexes.errors import CorruptIndexError, DuplicateIdError
from indexes.persist import Manifest, load_array, read_manifest, save_array, write_index_dir
from indexes.prep import VectorPrep
from indexes.types import (
    FloatArray,
    IdArray,
    IdFilter,
    Metric,
    SearchResult,
    check_ids,
    pad_result,
    top_k_desc,
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
        overfetch_fraction: float = 0.5,
        threads: int = 1,
    ) -> None:
        self._prep = VectorPrep(dim, metric)
        self.params = {
            "m": m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "seed": seed,
        }
        self.exact_limit = exact_limit
        self.overfetch_fraction = overfetch_fraction
        self.threads = threads
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(
            max_elements=1024, ef_construction=ef_construction, M=m, random_seed=seed
        )
        self._index.set_ef(ef_search)
        self._live: set[int] = set()
        self._sorted: IdArray | None = None

    @property
    def dim(self) -> int:
        return self._prep.dim

    @property
    def metric(self) -> Metric:
        return self._prep.metric

    @property
    def ef_search(self) -> int:
        return int(self._index.ef)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._index.set_ef(int(value))
        self.params["ef_search"] = int(value)

    def raw(self) -> Any:
        """The underlying ``hnswlib.Index`` (for benchmarks comparing against it)."""
        return self._index

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, int | np.integer) and int(item) in self._live

    def ids(self) -> IdArray:
        if self._sorted is None:
            self._sorted = np.array(sorted(self._live), dtype=np.int64)
        return self._sorted.copy()

    def _reserve(self, extra: int) -> None:
        need = self._index.element_count + extra
        cap = self._index.get_max_elements()
        if need > cap:
            self._index.resize_index(max(need, cap * 2))

    def _insert(self, ids: IdArray, vecs: FloatArray) -> None:
        if ids.size == 0:
            return
        self._reserve(ids.size)
        self._index.add_items(vecs, ids, num_threads=-1)
        self._live.update(ids.tolist())
        self._sorted = None

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        dup = [i for i in id_arr.tolist() if i in self._live]
        if dup:
            raise DuplicateIdError(f"ids already in the index (use upsert): {dup[:5]}")
        self._insert(id_arr, vecs)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        # hnswlib updates a present label in place and revives a deleted one.
        id_arr, vecs = self._prep.vectors(ids, vectors)
        self._insert(id_arr, vecs)

    def remove(self, ids: npt.ArrayLike) -> int:
        removed = 0
        for i in check_ids(ids).tolist():
            if i in self._live:
                self._index.mark_deleted(i)
                self._live.discard(i)
                removed += 1
        if removed:
            self._sorted = None
        return removed

    # -- search -----------------------------------------------------------------------------

    def search(
        self, queries: npt.ArrayLike, top_k: int, allow: IdFilter | None = None
    ) -> SearchResult:
        q = self._prep.queries(queries, top_k)
        n = len(self._live)
        if n == 0:
            return pad_result(
                [(np.empty(0, np.float32), np.empty(0, np.int64))] * q.shape[0], top_k
            )
        if allow is None:
            k = min(top_k, n)
            labels, dist = self._index.knn_query(q, k=k, num_threads=self.threads)
            scores = (1.0 - dist).astype(np.float32, copy=False)
            if k == top_k:
                return SearchResult(scores, labels.astype(np.int64, copy=False))
            return pad_result(list(zip(scores, labels.astype(np.int64), strict=True)), top_k)
        return pad_result([self._filtered(row[None, :], top_k, allow) for row in q], top_k)

    def _filtered(self, q: FloatArray, top_k: int, allow: IdFilter) -> tuple[FloatArray, IdArray]:
        n = len(self._live)
        if len(allow) <= self.exact_limit:
            return self._exact(q, top_k, allow)
        fraction = min(1.0, len(allow) / n)
        if fraction >= self.overfetch_fraction:
            k = min(n, math.ceil(top_k / fraction * 1.5) + 10)
            labels, dist = self._index.knn_query(q, k=k, num_threads=1)
            ids = labels[0].astype(np.int64)
            keep = allow.mask(ids)
            if int(keep.sum()) >= top_k:
                return (1.0 - dist[0][keep]).astype(np.float32)[:top_k], ids[keep][:top_k]
        allowed = allow.as_set()
        old_ef = int(self._index.ef)
        self._index.set_ef(min(n, max(old_ef, math.ceil(top_k / fraction), top_k)))
        try:
            labels, dist = self._index.knn_query(
                q, k=top_k, num_threads=1, filter=allowed.__contains__
            )
            return (1.0 - dist[0]).astype(np.float32), labels[0].astype(np.int64)
        except RuntimeError:  # fewer than top_k reachable: fall back to the exact scan
            return self._exact(q, top_k, allow)
        finally:
            self._index.set_ef(old_ef)

    def _exact(self, q: FloatArray, top_k: int, allow: IdFilter) -> tuple[FloatArray, IdArray]:
        live = self.ids_view()
        cand = allow.ids[IdFilter(live).mask(allow.ids)] if live.size else live
        if cand.size == 0:
            return np.empty(0, np.float32), np.empty(0, np.int64)
        vecs = np.asarray(self._index.get_items(cand, return_type="numpy"), dtype=np.float32)
        sims = vecs @ q[0]
        best = top_k_desc(sims, top_k)
        return sims[best].astype(np.float32), cand[best]

    def ids_view(self) -> IdArray:
        if self._sorted is None:
            self._sorted = np.array(sorted(self._live), dtype=np.int64)
        return self._sorted

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        def build(gen: Path, _shared: Path) -> Manifest:
            self._index.save_index(str(gen / "graph.bin"))
            save_array(gen / "ids.npy", self.ids_view())
            return Manifest(
                backend=self.backend,
                metric=self.metric,
                dim=self.dim,
                count=len(self),
                params=dict(self.params),
                files={"graph": f"{gen.name}/graph.bin", "ids": f"{gen.name}/ids.npy"},
            )

        write_index_dir(Path(path), build)

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None, metric: Metric | None = None) -> Self:
        path = Path(path)
        m = read_manifest(path, backend=cls.backend, expect={"dim": dim, "metric": metric})
        p = m.params
        index = cls(
            VectorPrep.manifest_dim(m),
            VectorPrep.manifest_metric(m),
            m=int(p["m"] or 16),
            ef_construction=int(p["ef_construction"] or 200),
            ef_search=int(p["ef_search"] or 64),
            seed=int(p["seed"] or 100),
        )
        graph = hnswlib.Index(space="ip", dim=index.dim)
        try:
            graph.load_index(str(path / m.files["graph"]))
        except RuntimeError as exc:
            raise CorruptIndexError(f"cannot read HNSW graph at {path}: {exc}") from exc
        graph.set_ef(index.params["ef_search"])
        index._index = graph
        ids = load_array(path / m.files["ids"]).astype(np.int64)
        index._live = set(ids.tolist())
        if len(index._live) != m.count:
            raise CorruptIndexError(
                f"index at {path}: {len(index._live)} ids, manifest says {m.count}"
            )
        return index
