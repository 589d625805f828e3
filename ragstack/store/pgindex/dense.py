"""``PgVectorIndex``: a collection's dense index as a pgvector table (see the package
docstring)."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from indexes import IdFilter, SearchResult
from indexes.types import Metric
from ragstack.store.engine import PG_EF_SEARCH, reading
from ragstack.store.pgindex.permits import (
    Allow,
    Permit,
    Permits,
    SqlAllow,
    form_of,
    permit_params,
    restrict,
    template,
)
from ragstack.store.pgindex.tables import (
    F32,
    I64,
    PGCOPY,
    copy_in,
    dense_table,
    has_id,
    int_ids,
    own_table,
    tend,
)


def _unit(vectors: F32) -> F32:
    """Rows scaled to length 1 (cosine as inner product); zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: F32 = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
    return out


@functools.cache
def _vector_format(dim: int) -> str:
    return "[" + ",".join(["%.9g"] * dim) + "]"


def vector_text(vec: F32) -> str:
    """pgvector's text form of ``vec``, each float32 exactly (nine significant digits
    round-trip any float32), in one formatting call: 2.5x faster than pgvector's own."""
    values = vec.astype(np.float32).reshape(-1).tolist()
    return _vector_format(len(values)) % tuple(values)


class PgVectorIndex:
    """``VectorIndex`` over ``rs_dense_<collection id>`` (see the module docstring)."""

    IVF_MIN_ROWS = 10_000  # IVFFlat lists are trained on the rows present: wait for enough
    EXACT_BELOW = 3_000  # permitted rows this few: exact distances over them beat the graph

    def __init__(
        self, engine: Engine, collection_id: int, dim: int, backend: str, dense_name: str = "dense"
    ) -> None:
        self.engine = engine
        self.collection_id = int(collection_id)
        self._dim = int(dim)
        self.backend = backend
        self.name = dense_table(self.collection_id, dense_name)
        self._permits = Permits()
        self._ann: dict[str, Select[Any]] = {}  # graph-scan statements by ``form_of``
        hnsw = Index(
            f"{self.name}_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_ip_ops"},
        )
        self.table = own_table(
            self.name,
            Column("id", BigInteger, primary_key=True, autoincrement=False),
            Column("embedding", Vector(self._dim), nullable=False),
            *([hnsw] if backend == "hnsw" else []),
        )

    # -- VectorIndex ------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return "cosine"

    def create(self, conn: Connection) -> None:
        self.table.create(conn, checkfirst=True)  # with its HNSW index, for hnsw

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())

    def __contains__(self, item: object) -> bool:
        return has_id(self.engine, self.table, item)

    def ids(self) -> I64:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table.c.id).order_by(self.table.c.id)).scalars()
            return np.fromiter(rows, dtype=np.int64)

    def vectors(self, ids: npt.ArrayLike) -> F32:
        """The stored vectors of ``ids`` (unit length); ``KeyError`` if one is absent."""
        id_list = int_ids(ids)
        found: dict[int, F32] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(id_list), 10_000):
                part = bindparam("ids", id_list[start : start + 10_000], type_=ARRAY(BigInteger))
                for cid, vec in conn.execute(
                    select(self.table.c.id, self.table.c.embedding).where(
                        self.table.c.id == any_(part)
                    )
                ):
                    found[int(cid)] = np.asarray(vec, dtype=np.float32)
        missing = [i for i in id_list if i not in found]
        if missing:
            raise KeyError(f"ids not in the index: {missing[:5]}")
        if not id_list:
            return np.empty((0, self._dim), dtype=np.float32)
        return np.stack([found[i] for i in id_list])

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        with self.engine.begin() as conn:
            self.add_in(conn, ids, vectors)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        with self.engine.begin() as conn:
            self.remove_in(conn, ids)
            self.add_in(conn, ids, vectors)

    def remove(self, ids: npt.ArrayLike) -> int:
        with self.engine.begin() as conn:
            return self.remove_in(conn, ids)

    def add_in(self, conn: Connection, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        id_list = int_ids(ids)
        if not id_list:
            return
        vecs = _unit(np.asarray(vectors, dtype=np.float32).reshape(len(id_list), self._dim))
        self._permits.clear()
        # COPY in PostgreSQL's binary format, built by numpy: a row is its field count, then
        # each field's length and bytes (bigint; pgvector's vector: dim, 0, float4s), all
        # big-endian. Tens of times faster than one INSERT per row.
        row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"),
                        ("vec_len", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
                        ("vec", ">f4", (self._dim,))])  # fmt: skip
        body = np.zeros(len(id_list), dtype=row)
        body["fields"], body["id_len"], body["id"] = 2, 8, id_list
        body["vec_len"], body["dim"], body["vec"] = 4 + 4 * self._dim, self._dim, vecs
        copy_in(conn, f"COPY {self.name} (id, embedding) FROM STDIN (FORMAT BINARY)",
              PGCOPY + body.tobytes() + b"\xff\xff")  # fmt: skip

    def remove_in(self, conn: Connection, ids: npt.ArrayLike) -> int:
        id_list = int_ids(ids)
        if not id_list:
            return 0
        self._permits.clear()
        gone = conn.execute(
            delete(self.table).where(
                self.table.c.id == any_(bindparam("gone", id_list, type_=ARRAY(BigInteger)))
            )
        )
        return int(gone.rowcount or 0)

    def search(
        self, queries: npt.ArrayLike, top_k: int, allow: Allow | None = None
    ) -> SearchResult:
        q = _unit(np.asarray(queries, dtype=np.float32).reshape(-1, self._dim))
        scores = np.full((len(q), top_k), -np.inf, dtype=np.float32)
        out = np.full((len(q), top_k), -1, dtype=np.int64)
        for row, vec in enumerate(q):
            hits = self._search_one(vec, top_k, allow)
            for col, (cid, score) in enumerate(hits):
                out[row, col], scores[row, col] = cid, score
        return SearchResult(scores, out)

    def _search_one(self, vec: F32, top_k: int, allow: Allow | None) -> list[tuple[int, float]]:
        t = self.table
        ef = min(1000, max(64, top_k))
        # one statement, no transaction of its own (a BEGIN and a ROLLBACK are round trips
        # too), unless the search needs settings of its own: the session's are the store's
        # (``store.PG_EF_SEARCH``, iterative scans)
        own = ef > PG_EF_SEARCH
        opened = self.engine.begin() if own else reading(self.engine)
        with opened as conn:
            permit = self._permits.get(conn, t, allow) if isinstance(allow, IdFilter) else None

            def exact(scan: bool) -> list[Any]:
                where = None if allow is None else restrict(t.c.id, allow, permit)
                dist = t.c.embedding.max_inner_product(vec)  # the negated inner product
                return self._exact(conn, dist, where, top_k, scan=scan)

            small = permit is not None and not permit.exclude and permit.n <= self.EXACT_BELOW
            if small or self.backend == "exact":
                rows = exact(scan=not small)
            else:
                if ef > PG_EF_SEARCH:
                    conn.execute(select(func.set_config("hnsw.ef_search", str(ef), True)))
                ann = self._graph_scan(allow, permit)
                values = {"qvec": vector_text(vec), "top_k": top_k, **permit_params(permit)}
                rows = list(conn.execute(ann, values).all())
                # fewer than asked, and fewer than the permitted rows: the scan gave up
                wanted = top_k if permit is None else min(top_k, permit.n)
                if len(rows) < wanted:  # be exact
                    rows = exact(scan=True)
        hits = [(int(i), -float(d)) for i, d in rows]
        hits.sort(key=lambda h: (-h[1], h[0]))  # iterative scans return in relaxed order
        return hits

    def _graph_scan(self, allow: Allow | None, permit: Permit | None) -> Select[Any]:
        """The graph-index scan for the permitted set: ``qvec``, ``top_k`` and the set bound
        when it runs; kept per form of set (an ``SqlAllow``'s query is its own)."""
        shape = None if isinstance(allow, SqlAllow) else form_of(permit)
        found = self._ann.get(shape) if shape is not None else None
        if found is not None:
            return found
        t = self.table
        # the vector as text made by ``vector_text``, cast in SQL
        qvec = cast(bindparam("qvec", type_=Text), Vector(self._dim))
        dist = t.c.embedding.max_inner_product(qvec)
        ann = select(t.c.id, dist.label("d")).order_by(dist)
        ann = ann.limit(bindparam("top_k", type_=Integer))
        if allow is not None:
            form = permit if isinstance(allow, SqlAllow) else template(permit)
            test = restrict(t.c.id, allow, form, per_row=True)
            ann = ann if test is None else ann.where(test)
        if shape is not None:
            self._ann[shape] = ann
        return ann

    def _exact(
        self, conn: Connection, dist: Any, where: Any, top_k: int, *, scan: bool
    ) -> list[Any]:
        """The exact ``top_k`` (ties by id): every permitted row's distance, computed over
        the permitted rows found by their ids (``scan=False``: a small permitted set) or by a
        scan of the table (the index would order by distance alone)."""
        t = self.table
        rows = select(t.c.id, dist.label("d"))
        scored = (rows if where is None else rows.where(where)).cte("scored")
        scored = scored.prefix_with("MATERIALIZED")  # distances first, then the order
        stmt = select(scored.c.id, scored.c.d).order_by(scored.c.d, scored.c.id).limit(top_k)
        if not scan:
            return list(conn.execute(stmt).all())
        with self.engine.begin() as own:  # the graph index would order by distance alone
            own.execute(select(func.set_config("enable_indexscan", "off", True)))
            return list(own.execute(stmt).all())

    @classmethod
    def load(
        cls, path: Path, *, dim: int | None = None, metric: str | None = None
    ) -> PgVectorIndex:
        raise TypeError("a database index is opened with its engine, never loaded from a path")

    def save(self, path: Path | None = None) -> None:
        """Nothing to write (every change is committed): ``tend``s the table, and builds the
        IVFFlat index of an ``ivfpq`` collection once it has rows enough to train on."""
        tend(self.engine, [self.name])
        if self.backend != "ivfpq":
            return
        with self.engine.begin() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_indexes WHERE indexname = %s", (f"{self.name}_ivf",)
            ).first()
            if exists:
                return
            rows = int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())
            if rows < self.IVF_MIN_ROWS:
                return
            lists = max(16, int(math.sqrt(rows)))
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {self.name}_ivf ON {self.name} "
                f"USING ivfflat (embedding vector_ip_ops) WITH (lists = {lists})"
            )
