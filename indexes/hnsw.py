"""``HnswIndex``: an HNSW graph (faiss ``IndexHNSWFlat``) behind the ``VectorIndex`` protocol.

One copy of the vectors. The graph's own float32 storage is read in place (a numpy view of
faiss's array) for exact scans of permitted subsets, so nothing keeps a second copy beside it:
a million 384-d vectors cost 1.5 GB, not 3 (hnswlib, used until issue 17, keeps its vectors
inside its graph where Python can only copy them out one by one, ~30 us each).

Rows are the graph's internal positions in insertion order; ``labels`` maps them to the
caller's ids and a sorted view maps ids back. Removing an id tombstones its row (the graph
keeps it as a waypoint, as hnswlib's ``mark_deleted`` did): searches skip it through a live-row
bitmap. Upserting a present id tombstones the old row and adds a new one. (Ragstack never
reuses chunk ids, so an update is always new rows anyway; ``ragstack reindex`` compacts.)

Filtered search picks a strategy by how many ids are permitted:

* few (``<= exact_limit``), or too small a share for the graph (it would need a candidate
  list longer than ``overfetch_limit``): an exact scan over just those rows - exact recall,
  and cheaper than a walk that must skip almost every node;
* more: the graph walk itself skips rows outside the permitted set (a bitmap faiss tests in
  C++, no Python per node), with a candidate list of ``max(ef_search, top_k) / share``, so
  about as many permitted rows are met as an unfiltered search meets rows; if it still
  returns fewer than ``top_k``, the exact scan decides.

Either way the best ``top_k`` permitted ids come back whenever that many exist. The exact
scan breaks score ties by the lower id; the graph orders by score alone.

A permitted set that is scanned keeps a contiguous copy of its rows' vectors (and ids) for the
next search under the same set, within ``scan_cache_bytes`` over all cached sets (least
recently used copies go first). Gathering thousands of scattered rows is most of a scan's
cost: on 1M x 384 rows, 9,065 permitted rows score in 1.1 ms gathered and 0.1 ms from the
copy, so a 1%-permitted search grows with the permitted rows at the speed of a matrix-vector
product rather than of random reads.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Self

import faiss
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
    scores_of_rows,
    top_k_by_score_then_id,
)

ENGINE = "faiss-hnsw-flat"  # what wrote the graph file (manifest ``params.engine``)
_FILTERS = 16  # permitted sets whose row bitmaps are kept (least recently used go first)
SCAN_CACHE_BYTES = 256 << 20  # permitted sets' gathered vectors kept, over all of them
Rows = npt.NDArray[np.intp]


class _Permitted:
    """One permitted set in row space: its rows (sorted) and, when the graph is walked, a
    bitmap faiss tests (kept alive as long as the selector that points into it)."""

    def __init__(self, rows: npt.NDArray[np.integer], capacity: int) -> None:
        self.rows = rows
        self._bitmap: npt.NDArray[np.uint8] | None = None
        self._selector: Any = None
        self._capacity = capacity
        self.gathered: tuple[FloatArray, IdArray] | None = None  # rows' vectors and ids

    @property
    def gathered_bytes(self) -> int:
        return 0 if self.gathered is None else int(self.gathered[0].nbytes)

    def selector(self) -> Any:
        if self._selector is None:
            bits = np.zeros(self._capacity, dtype=bool)
            bits[self.rows] = True
            self._bitmap = np.packbits(bits, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(self._capacity, faiss.swig_ptr(self._bitmap))
        return self._selector


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
        scan_cache_bytes: int = SCAN_CACHE_BYTES,
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
        self.scan_cache_bytes = scan_cache_bytes
        self._graph = self._new_graph()
        self._labels: IdArray = np.empty(0, dtype=np.int64)  # row -> id (dead rows too)
        self._live = np.empty(0, dtype=bool)  # row -> not tombstoned
        self._dead = 0
        self._sorted_ids: IdArray = np.empty(0, dtype=np.int64)  # live ids, sorted
        self._sorted_rows: Rows = np.empty(0, dtype=np.intp)  # their rows
        self._xb: FloatArray | None = None  # view of the graph's vectors
        self._everyone: _Permitted | None = None  # every live row (when some are dead)
        self._filters: OrderedDict[int, tuple[weakref.ref[IdFilter], _Permitted]] = OrderedDict()

    def _new_graph(self) -> Any:
        graph = faiss.IndexHNSWFlat(self.dim, self.params["m"], faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.params["ef_construction"]
        graph.hnsw.efSearch = self.params["ef_search"]
        graph.hnsw.rng = faiss.RandomGenerator(self.params["seed"])  # type: ignore[attr-defined]
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
        self._graph.hnsw.efSearch = int(value)
        self.params["ef_search"] = int(value)

    def raw(self) -> Any:
        """The underlying ``faiss.IndexHNSWFlat`` (for benchmarks comparing against it)."""
        return self._graph

    def __len__(self) -> int:
        return int(self._sorted_ids.size)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer):
            return False
        pos = int(np.searchsorted(self._sorted_ids, item))
        return pos < self._sorted_ids.size and int(self._sorted_ids[pos]) == int(item)

    def ids(self) -> IdArray:
        return self._sorted_ids.copy()

    @property
    def dead_rows(self) -> int:
        """Tombstoned rows still in the graph (removed or replaced ids)."""
        return self._dead

    def vectors(self, ids: npt.ArrayLike) -> FloatArray:
        """The stored (for cosine: normalised) vectors of ``ids``; ``KeyError`` if one is absent."""
        id_arr = check_ids(ids)
        rows, found = self._rows_of_ids(id_arr)
        if not found.all():
            raise KeyError(f"ids not in the index: {id_arr[~found][:5].tolist()}")
        return self._vectors()[rows].copy()

    # -- row bookkeeping --------------------------------------------------------------------

    def _vectors(self) -> FloatArray:
        if self._xb is None:
            n = int(self._graph.ntotal)
            storage = faiss.downcast_index(self._graph.storage)
            xb = storage.get_xb()  # type: ignore[attr-defined]
            flat = faiss.rev_swig_ptr(xb, n * self.dim) if n else np.empty(0)
            self._xb = np.asarray(flat, dtype=np.float32).reshape(n, self.dim)
        return self._xb

    def _rows_of_ids(self, ids: IdArray) -> tuple[Rows, npt.NDArray[np.bool_]]:
        """Rows of ``ids`` among the live ones, and which of ``ids`` are live."""
        sorted_ids = self._sorted_ids
        if sorted_ids.size == 0 or ids.size == 0:
            return np.empty(0, dtype=np.intp), np.zeros(ids.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
        found: npt.NDArray[np.bool_] = sorted_ids[pos] == ids
        return self._sorted_rows[pos[found]], found

    def _changed(self) -> None:
        self._everyone = None
        self._filters.clear()

    # -- writes -----------------------------------------------------------------------------

    def _append(self, ids: IdArray, vecs: FloatArray) -> None:
        if ids.size == 0:
            return
        start = int(self._graph.ntotal)
        self._graph.add(vecs)  # on every core (faiss's OpenMP threads)
        self._xb = None
        rows = np.arange(start, start + ids.size, dtype=np.intp)
        self._labels = np.concatenate([self._labels, ids])
        self._live = np.concatenate([self._live, np.ones(ids.size, dtype=bool)])
        order = np.argsort(ids, kind="stable")
        where = np.searchsorted(self._sorted_ids, ids[order])
        self._sorted_ids = np.insert(self._sorted_ids, where, ids[order])
        self._sorted_rows = np.insert(self._sorted_rows, where, rows[order])
        self._changed()

    def _tombstone(self, rows: Rows) -> None:
        if rows.size == 0:
            return
        self._live[rows] = False
        self._dead += int(rows.size)
        keep = self._live[self._sorted_rows]
        self._sorted_ids = self._sorted_ids[keep]
        self._sorted_rows = self._sorted_rows[keep]
        self._changed()

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        _rows, present = self._rows_of_ids(id_arr)
        if present.any():
            raise DuplicateIdError(
                f"ids already in the index (use upsert): {id_arr[present][:5].tolist()}"
            )
        self._append(id_arr, vecs)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_arr, vecs = self._prep.vectors(ids, vectors)
        self._tombstone(self._rows_of_ids(id_arr)[0])
        self._append(id_arr, vecs)

    def remove(self, ids: npt.ArrayLike) -> int:
        rows = self._rows_of_ids(check_ids(ids))[0]
        self._tombstone(rows)
        return int(rows.size)

    # -- search -----------------------------------------------------------------------------

    def _permitted(self, allow: IdFilter) -> _Permitted:
        """``allow`` in row space, cached per ``IdFilter`` object until the next write."""
        key = id(allow)
        found = self._filters.get(key)
        if found is not None and found[0]() is allow:
            self._filters.move_to_end(key)
            return found[1]
        rows = np.sort(self._rows_of_ids(allow.ids)[0]).astype(np.int32)
        entry = _Permitted(rows, int(self._graph.ntotal))
        self._filters[key] = (weakref.ref(allow), entry)
        while len(self._filters) > _FILTERS:
            self._filters.popitem(last=False)
        return entry

    def _live_rows(self) -> _Permitted:
        if self._everyone is None:
            self._everyone = _Permitted(np.flatnonzero(self._live), int(self._graph.ntotal))
        return self._everyone

    def search(
        self, queries: npt.ArrayLike, top_k: int, allow: IdFilter | None = None
    ) -> SearchResult:
        q = self._prep.queries(queries, top_k)
        n = len(self)
        if allow is None:
            if n == 0:
                return pad_result([self._scan(row, top_k, None) for row in q], top_k)
            rows = None if self._dead == 0 else self._live_rows()
            return pad_result([self._walk(row, top_k, rows, 1.0) for row in q], top_k)
        permitted = self._permitted(allow)
        return pad_result([self._filtered(row, top_k, permitted) for row in q], top_k)

    def _filtered(
        self, q: FloatArray, top_k: int, permitted: _Permitted
    ) -> tuple[FloatArray, IdArray]:
        p, n = permitted.rows.size, len(self)
        if p <= self.exact_limit or p == 0:
            return self._scan_permitted(q, top_k, permitted)
        share = p / n
        if max(self.ef_search, top_k) / share > self.overfetch_limit:
            return self._scan_permitted(q, top_k, permitted)
        return self._walk(q, top_k, permitted, share)

    def _scan_permitted(
        self, q: FloatArray, top_k: int, permitted: _Permitted
    ) -> tuple[FloatArray, IdArray]:
        """The exact scan of a permitted set, from its gathered copy when one is kept."""
        gathered = permitted.gathered or self._gather(permitted)
        if gathered is None:
            return self._scan(q, top_k, permitted.rows)
        vectors, ids = gathered
        sims = vectors @ q
        best = top_k_by_score_then_id(sims, ids, top_k)
        return sims[best].astype(np.float32, copy=False), ids[best]

    def _gather(self, permitted: _Permitted) -> tuple[FloatArray, IdArray] | None:
        """``permitted``'s vectors and ids, copied together when the budget allows (the
        copies of the least recently used sets go first); ``None`` when they cannot fit."""
        need = int(permitted.rows.size) * self.dim * 4
        if need == 0 or need > self.scan_cache_bytes:
            return None
        cached = [entry for _ref, entry in list(self._filters.values())]  # a snapshot: searches
        held = sum(entry.gathered_bytes for entry in cached)  # on other threads may add sets
        for entry in cached:  # least recently used first
            if held + need <= self.scan_cache_bytes:
                break
            held -= entry.gathered_bytes
            entry.gathered = None
        rows = permitted.rows
        permitted.gathered = (np.ascontiguousarray(self._vectors()[rows]), self._labels[rows])
        return permitted.gathered

    def _walk(
        self, q: FloatArray, top_k: int, permitted: _Permitted | None, share: float
    ) -> tuple[FloatArray, IdArray]:
        """The graph's answer, inside ``permitted`` rows when given; the exact scan when the
        walk finds fewer than ``top_k`` of the rows that exist."""
        ef = max(self.ef_search, top_k)
        if permitted is not None and share < 1.0:
            ef = min(self.overfetch_limit, math.ceil(ef / share))
        params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        if permitted is not None:
            params.sel = permitted.selector()
        scores, rows = self._graph.search(q[None, :], top_k, params=params)
        found = rows[0] >= 0
        have = permitted.rows.size if permitted is not None else len(self)
        if int(found.sum()) < min(top_k, have):
            return self._scan(q, top_k, None if permitted is None else permitted.rows)
        return scores[0][found].astype(np.float32, copy=False), self._labels[rows[0][found]]

    def _scan(
        self, q: FloatArray, top_k: int, rows: npt.NDArray[np.integer] | None
    ) -> tuple[FloatArray, IdArray]:
        """Exact inner-product top ``top_k`` over the live rows, or over ``rows``."""
        if rows is None:
            rows = self._sorted_rows
        if rows.size == 0:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        sims = scores_of_rows(self._vectors(), rows, q[None, :])[0]
        ids = self._labels[rows]
        best = top_k_by_score_then_id(sims, ids, top_k)
        return sims[best].astype(np.float32, copy=False), ids[best]

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        def build(gen: Path, _shared: Path) -> Manifest:
            faiss.write_index(self._graph, str(gen / "graph.faiss"))
            save_array(gen / "labels.npy", self._labels)
            save_array(gen / "live.npy", self._live)
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
                    "engine": ENGINE,
                },
                files={
                    "graph": f"{gen.name}/graph.faiss",
                    "labels": f"{gen.name}/labels.npy",
                    "live": f"{gen.name}/live.npy",
                },
            )

        write_index_dir(Path(path), build)

    @classmethod
    def load(cls, path: Path, *, dim: int | None = None, metric: Metric | None = None) -> Self:
        path = Path(path)
        m = read_manifest(path, backend=cls.backend, expect={"dim": dim, "metric": metric})
        p = m.params
        if p.get("engine") != ENGINE:
            raise CorruptIndexError(
                f"HNSW index at {path} was written by an older ragstack (hnswlib): "
                "rebuild it from SQL (opening the collection does)"
            )

        def num(key: str, default: int) -> int:
            value = p.get(key)
            return default if value is None else int(value)

        index = cls(
            VectorPrep.manifest_dim(m),
            VectorPrep.manifest_metric(m),
            m=num("m", 16),
            ef_construction=num("ef_construction", 200),
            ef_search=num("ef_search", 64),
            seed=num("seed", 100),
            exact_limit=num("exact_limit", 4096),
            overfetch_limit=num("overfetch_limit", 4096),
        )
        labels = load_array(path / m.files["labels"]).astype(np.int64)
        live = load_array(path / m.files["live"]).astype(bool)
        try:
            graph = faiss.read_index(str(path / m.files["graph"]))
        except RuntimeError as exc:
            raise CorruptIndexError(f"cannot read HNSW graph at {path}: {exc}") from exc
        if (
            not isinstance(graph, faiss.IndexHNSWFlat)
            or graph.d != index.dim
            or graph.ntotal != labels.size
            or live.shape != labels.shape
            or int(live.sum()) != m.count
        ):
            raise CorruptIndexError(f"index at {path}: data does not match its manifest")
        graph.hnsw.efSearch = index.ef_search
        index._graph = graph
        index._labels = labels
        index._live = live
        index._dead = int(live.size - live.sum())
        rows = np.flatnonzero(live)
        order = np.argsort(labels[rows], kind="stable")
        index._sorted_ids = labels[rows][order]
        index._sorted_rows = rows[order]
        if index._sorted_ids.size > 1 and not (np.diff(index._sorted_ids) > 0).all():
            raise CorruptIndexError(f"index at {path}: an id is live in two rows")
        return index
