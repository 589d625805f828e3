"""A collection's dense and lexical indexes inside PostgreSQL (the shared-database backend).

With ``RAGSTACK_DATABASE_URL=postgresql://...`` every API replica and ingest worker reads the
same indexes, so none lives in local files: each collection gets its own tables, created on
first use (they are index data, like the embedded backend's index directories, and so are
outside the Alembic schema):

* ``rs_dense_<id>``: chunk id and its vector (pgvector ``vector(dim)``), with an HNSW index on
  inner product (the vectors are normalised: inner product is cosine) for the ``hnsw``
  backend, IVFFlat for ``ivfpq`` (built once the collection has rows to train its lists on),
  none for ``exact``.
* ``rs_bm25_post_<id>`` (term, chunk id, tf, document length), ``rs_bm25_docs_<id>`` (chunk
  id, length), ``rs_bm25_terms_<id>`` (term, df) and ``rs_bm25_stats_<id>`` (documents, total
  length): BM25 postings analysed in Python
  with the embedded engine's own ``Analyzer`` and scored in SQL with its formula (Lucene idf,
  k1 1.2, b 0.75), so both backends rank alike. Only the query terms' postings are touched
  (PostgreSQL's own ``ts_rank`` is not BM25 and scans every matching row's tsvector).

Every search takes the permitted chunk ids either as an ``IdFilter`` (what the service
passes: its cached set for the caller and the collection's generation) or as an ``SqlAllow``
(the ACL query itself, joined in the statement), so exactly the ``top_k`` best *permitted*
chunks come back. An ``IdFilter`` is looked at once per object (``_Permits``): no filter at all
when it holds every row; else the shorter of its ids and the rest's, bound as one parameter:
a short list of permitted ids as an index condition (``id = ANY``), a list of excluded ids
materialised once per statement and hashed, and a long list of dense ids as a bitmap tested
per row (``_bitmap``). A filtered HNSW scan tests each row it yields (pgvector's iterative scan
continues until it has ``top_k``); a small set is scored exactly instead
(``PgVectorIndex.EXACT_BELOW``). The graph scan and the full scoring statement are built once
per form of set (``_shape``) and run with the values bound.

BM25 statistics are the permitted rows' own, as the embedded engine's: their number, mean
length and each query term's document frequency among them, kept per permitted set (a
``_ViewStats``; a committed change arrives as a new set). Scoring is one statement over an
index-only scan of each query term's postings (``(term, id) INCLUDE (tf, len)``, a ``LATERAL``
range per term), in double precision; a query whose common terms cannot lift a row into the
top ``k`` skips their postings when MaxScore proves it (``_Scoring.pruned``), else scores
every posting. ``save()`` vacuums and analyses the tables as they grow (``tend``).

Writes run inside the caller's transaction (``add_in`` / ``remove_in``), so SQL and these
indexes commit together.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    select,
    true,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from indexes import IdFilter, LexicalHits, SearchResult
from indexes.analysis import Analyzer
from indexes.types import Metric
from ragstack.store.store import PG_EF_SEARCH, reading

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
_CREATE_LOCK = 0x7273_6978  # advisory lock key for creating a collection's tables


def _has_id(engine: Engine, table: Table, item: object) -> bool:
    """Whether ``table`` has a row whose ``id`` is ``item`` (an int)."""
    if not isinstance(item, int | np.integer):
        return False
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(table.c.id == int(item))).first() is not None


_PGCOPY = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY: signature, flags, extension


def _copy(conn: Connection, statement: str, data: bytes) -> None:
    """``COPY ... FROM STDIN`` of ``data`` on the connection, inside its transaction."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(data), 1 << 22):
            copy.write(data[start : start + (1 << 22)])


@dataclass(frozen=True)
class SqlAllow:
    """The permitted chunk ids as a query (``SELECT chunks.id ...``) to join in SQL. ``key``
    names the permitted set for caches (the service's: collection, generation, caller scope
    and filters), ``None`` when it must not be cached."""

    select: Select[Any]
    key: tuple[object, ...] | None = None


Allow = IdFilter | SqlAllow


def _permitted(id_col: Any, allow: Allow) -> Any:
    if isinstance(allow, SqlAllow):
        return id_col.in_(allow.select)
    return id_col == any_(bindparam("allowed", allow.ids.tolist(), type_=ARRAY(BigInteger)))


def _allowed_cte(allow: Allow) -> Any:
    """The permitted ids as a ``MATERIALIZED`` CTE (its one column first): evaluated once per
    statement and then hashed or probed as its size calls for. Joined as a plain ``IN
    (subquery)``, PostgreSQL re-ran the ACL join for every posting it read (180k nested-loop
    probes of chunks, ACL entries and documents for a two-term query: 2 s at 100k chunks)."""
    if isinstance(allow, SqlAllow):
        query: Any = allow.select
    else:
        ids = bindparam("allowed", allow.ids.tolist(), type_=ARRAY(BigInteger))
        query = select(func.unnest(ids).label("id"))
    return query.cte("allowed").prefix_with("MATERIALIZED")


def _in_allowed(id_col: Any, allowed: Any) -> Any:
    return id_col.in_(select(next(iter(allowed.c))))


@dataclass
class _Permit:
    """How statements restrict an index's rows to one ``IdFilter``: not at all (it holds every
    row), to its ids, or to every row but the rest (``exclude``: whichever list is shorter),
    the list as array text for one bound parameter. ``n``: the permitted rows, ``length``
    their total length (BM25's statistics; 0 for a dense index)."""

    n: int
    length: int
    every: bool
    exclude: bool
    text: str
    view: _ViewStats | None = None  # a BM25 index's statistics of these rows
    lo: int = 0  # with ``bits``: the id of its first bit
    bits: bytes | None = None  # the permitted ids as a bitmap (see ``_bitmap``), or None

    @property
    def hi(self) -> int:
        """With ``bits``: the id of its last bit."""
        return self.lo + 8 * len(self.bits or b"") - 1


_BITMAP_ABOVE = 3_000  # listed ids beyond which a compact bitmap replaces the list


def _bitmap(permitted: I64, listed: int) -> tuple[int, bytes] | None:
    """``(lo, bits)``: bit ``i`` (least significant first, as PostgreSQL's ``get_bit``
    numbers them) set when id ``lo + i`` is permitted -- when the list to send is long and
    the permitted ids are dense enough that the bitmap is no larger than the list as 8-byte
    ids. A long list costs every statement its parsing, materialising and hashing (tens of
    thousands of ids: several ms each time); a bitmap is one bytea tested per row."""
    if listed <= _BITMAP_ABOVE or not permitted.size:
        return None
    lo = int(permitted[0])
    span = int(permitted[-1]) - lo + 1
    if span > 64 * listed:
        return None
    flags = np.zeros(span, dtype=bool)
    flags[permitted - lo] = True
    return lo, np.packbits(flags, bitorder="little").tobytes()


class _Permits:
    """``_Permit``s of one index per ``IdFilter`` object: the service keeps one object per
    permitted set and collection generation (a committed change makes a new one), so an
    object's rows are counted once, as the embedded engine keeps its views."""

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._items: OrderedDict[int, tuple[weakref.ref[IdFilter], _Permit]] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, conn: Connection, table: Table, allow: IdFilter) -> _Permit:
        with self._lock:
            hit = self._items.get(id(allow))
            if hit is not None and hit[0]() is allow:
                self._items.move_to_end(id(allow))
                return hit[1]
        has_len = "len" in table.c
        cols = [table.c.id, table.c.len] if has_len else [table.c.id]
        rows = conn.execute(select(*cols).order_by(table.c.id)).all()
        all_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        inside = np.isin(all_ids, allow.ids, assume_unique=True)
        n = int(inside.sum())
        length = 0
        if has_len:
            lengths = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            length = int(lengths[inside].sum())
        exclude = n > all_ids.size - n
        listed = all_ids[~inside] if exclude else all_ids[inside]
        bitmap = _bitmap(all_ids[inside], listed.size)  # all_ids are in order
        text = "" if bitmap else "{" + ",".join(map(str, listed.tolist())) + "}"
        permit = _Permit(n, length, n == all_ids.size, exclude, text)
        if bitmap is not None:
            permit.lo, permit.bits = bitmap
        with self._lock:
            self._items[id(allow)] = (weakref.ref(allow), permit)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return permit


def _restrict(
    id_col: Any, allow: Allow, permit: _Permit | None, *, per_row: bool = False
) -> Any | None:
    """The condition keeping ``id_col`` to the permitted rows (``None``: every row is). The
    list is a ``MATERIALIZED`` CTE, so it is read once and hashed or probed, never rescanned
    per row. ``per_row``: a test of each row the scan yields (a hashed subplan), for graph
    index scans; a plain ``IN`` becomes a join, and a join cannot follow the graph's order."""
    if isinstance(allow, SqlAllow):
        found = _in_allowed(id_col, _allowed_cte(allow))
        return found.is_(True) if per_row else found
    assert permit is not None
    if permit.every:
        return None
    if permit.bits is not None:
        lo = bindparam("permit_lo", permit.lo, type_=BigInteger)
        hi = bindparam("permit_hi", permit.hi, type_=BigInteger)
        bits = bindparam("permit_bits", permit.bits, type_=LargeBinary)
        # the range first, in a CASE: get_bit past the end is an error, and AND's operands
        # may be evaluated in any order. "<> 0", not "= 1": the planner takes an equality on
        # an expression for 0.5% of the rows and then scanned a graph-filtered table whole
        # and sorted it (60 ms at 100k chunks, half of them permitted); an inequality it
        # takes for 99.5%, near enough for the sets a bitmap is used for (dense, thousands)
        bit = case((id_col.between(lo, hi), func.get_bit(bits, id_col - lo)), else_=0) != 0
        # a plain range also bounds an index range scan, but not for a graph scan: the
        # planner would read the range by id and sort it by distance instead
        return bit if per_row else and_(id_col.between(lo, hi), bit)
    listed = bindparam("permit", permit.text, type_=Text)
    if not permit.exclude and not per_row:
        # a short list of ids (a long one is a bitmap) as an index condition: probes of
        # (term, id) or of the primary key, not a read of every row the rest selects
        return id_col == any_(cast(listed, ARRAY(BigInteger)))
    ids = select(func.unnest(cast(listed, ARRAY(BigInteger))).label("id"))
    cte = ids.cte("listed").prefix_with("MATERIALIZED")
    if permit.exclude:
        return id_col.not_in(select(cte.c.id))  # never a join: a hashed subplan
    return id_col.in_(select(cte.c.id)).is_(True)


def _shape(permit: _Permit | None) -> str:
    """The form a statement takes for a permitted set (``_restrict``'s): its values are
    bound when it runs (``_permit_params``), so one statement object serves every set of
    that form and SQLAlchemy neither rebuilds nor re-keys it per search."""
    if permit is None or permit.every:
        return "all"
    if permit.bits is not None:
        return "bits"
    return "exclude" if permit.exclude else "include"


def _template(permit: _Permit | None) -> _Permit | None:
    """``permit``'s form without its values (a kept statement must not hold a set)."""
    if permit is None:
        return None
    bits = None if permit.bits is None else b""
    return _Permit(0, 0, permit.every, permit.exclude, "{}", None, 0, bits)


def _permit_params(permit: _Permit | None) -> dict[str, Any]:
    """The values of ``_restrict``'s parameters for ``permit``."""
    if permit is None or permit.every:
        return {}
    if permit.bits is not None:
        return {"permit_lo": permit.lo, "permit_hi": permit.hi, "permit_bits": permit.bits}
    return {"permit": permit.text}


def tend(engine: Engine, tables: Sequence[str]) -> list[str]:
    """``VACUUM (ANALYZE)`` those of ``tables`` never analysed or changed by a fifth since
    their last vacuum or analysis; returns their names. Autovacuum does the same in the
    background, but behind a bulk ingest (it naps a minute between rounds) and never after
    an unclean stop loses its counters: until then the planner guesses row counts, and
    postings without a visibility map cannot be read by an index-only scan (BM25 at 10k
    chunks, every row permitted: 9 ms a query before, 3.5 after). ``SKIP_LOCKED``: a table
    another writer is tending is left to it."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM: never in a transaction
        rows = conn.exec_driver_sql(
            "SELECT c.relname, c.reltuples,"
            " greatest(coalesce(s.n_ins_since_vacuum, 0) + coalesce(s.n_dead_tup, 0),"
            "          coalesce(s.n_mod_since_analyze, 0))"
            " FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.relname = ANY(%s) AND c.relkind = 'r'"
            " AND c.relnamespace = current_schema()::regnamespace",
            (list(tables),),
        ).all()
        stale = [str(name) for name, tuples, changed in rows
                 if tuples < 0 or changed > 0.2 * tuples + 1000]  # fmt: skip
        for name in stale:
            conn.exec_driver_sql(f"VACUUM (ANALYZE, SKIP_LOCKED) {name}")
    return stale


def _table(name: str, *items: Any) -> Table:
    """A table of its own index object (never shared: two databases in one process may hold
    a collection of the same id with another dimension)."""
    return Table(name, MetaData(), *items)


def dense_table(collection_id: int, dense_name: str = "dense") -> str:
    """The table of a collection's dense index ``dense_name`` (``dense``, or ``dense-<run>``
    of a live re-embed: ``rs_dense_<collection id>_<run>``)."""
    cid = int(collection_id)
    if dense_name == "dense":
        return f"rs_dense_{cid}"
    prefix, sep, run = dense_name.partition("-")
    if prefix != "dense" or not sep or not run.isdigit():
        raise ValueError(f"bad dense index name {dense_name!r}")
    return f"rs_dense_{cid}_{int(run)}"


def collection_tables(collection_id: int, dense_name: str = "dense") -> dict[str, list[str]]:
    """A collection's index tables, by index."""
    cid = int(collection_id)
    return {
        "dense": [dense_table(cid, dense_name)],
        "bm25": [f"rs_bm25_{kind}_{cid}" for kind in ("post", "docs", "terms", "stats")],
    }


def drop_dense_table(conn: Connection, collection_id: int, dense_name: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {dense_table(collection_id, dense_name)}")


def drop_collection_tables(conn: Connection, collection_id: int) -> None:
    """Drop a collection's index tables (with the collection), every dense one included."""
    cid = int(collection_id)
    shadows = conn.exec_driver_sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %s",
        (f"rs\\_dense\\_{cid}\\_%",),
    ).scalars()
    for name in [*shadows, *(n for names in collection_tables(cid).values() for n in names)]:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


def _unit(vectors: F32) -> F32:
    """Rows scaled to length 1 (cosine as inner product); zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: F32 = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
    return out


@functools.cache
def _vector_format(dim: int) -> str:
    return "[" + ",".join(["%.9g"] * dim) + "]"


def _vector_text(vec: F32) -> str:
    """pgvector's text form of ``vec``, each float32 exactly (nine significant digits
    round-trip any float32), in one formatting call: 2.5x faster than pgvector's own."""
    values = vec.astype(np.float32).reshape(-1).tolist()
    return _vector_format(len(values)) % tuple(values)


def _ids(values_: npt.ArrayLike) -> list[int]:
    return [int(i) for i in np.asarray(values_, dtype=np.int64).reshape(-1)]


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
        self._permits = _Permits()
        self._ann: dict[str, Select[Any]] = {}  # graph-scan statements by ``_shape``
        hnsw = Index(
            f"{self.name}_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_ip_ops"},
        )
        self.table = _table(
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
        return _has_id(self.engine, self.table, item)

    def ids(self) -> I64:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table.c.id).order_by(self.table.c.id)).scalars()
            return np.fromiter(rows, dtype=np.int64)

    def vectors(self, ids: npt.ArrayLike) -> F32:
        """The stored vectors of ``ids`` (unit length); ``KeyError`` if one is absent."""
        id_list = _ids(ids)
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
        id_list = _ids(ids)
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
        _copy(conn, f"COPY {self.name} (id, embedding) FROM STDIN (FORMAT BINARY)",
              _PGCOPY + body.tobytes() + b"\xff\xff")  # fmt: skip

    def remove_in(self, conn: Connection, ids: npt.ArrayLike) -> int:
        id_list = _ids(ids)
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
                where = None if allow is None else _restrict(t.c.id, allow, permit)
                dist = t.c.embedding.max_inner_product(vec)  # the negated inner product
                return self._exact(conn, dist, where, top_k, scan=scan)

            small = permit is not None and not permit.exclude and permit.n <= self.EXACT_BELOW
            if small or self.backend == "exact":
                rows = exact(scan=not small)
            else:
                if ef > PG_EF_SEARCH:
                    conn.execute(select(func.set_config("hnsw.ef_search", str(ef), True)))
                ann = self._graph_scan(allow, permit)
                values = {"qvec": _vector_text(vec), "top_k": top_k, **_permit_params(permit)}
                rows = list(conn.execute(ann, values).all())
                # fewer than asked, and fewer than the permitted rows: the scan gave up
                wanted = top_k if permit is None else min(top_k, permit.n)
                if len(rows) < wanted:  # be exact
                    rows = exact(scan=True)
        hits = [(int(i), -float(d)) for i, d in rows]
        hits.sort(key=lambda h: (-h[1], h[0]))  # iterative scans return in relaxed order
        return hits

    def _graph_scan(self, allow: Allow | None, permit: _Permit | None) -> Select[Any]:
        """The graph-index scan for the permitted set: ``qvec``, ``top_k`` and the set bound
        when it runs; kept per form of set (an ``SqlAllow``'s query is its own)."""
        shape = None if isinstance(allow, SqlAllow) else _shape(permit)
        found = self._ann.get(shape) if shape is not None else None
        if found is not None:
            return found
        t = self.table
        # the vector as text made by ``_vector_text``, cast in SQL
        qvec = cast(bindparam("qvec", type_=Text), Vector(self._dim))
        dist = t.c.embedding.max_inner_product(qvec)
        ann = select(t.c.id, dist.label("d")).order_by(dist)
        ann = ann.limit(bindparam("top_k", type_=Integer))
        if allow is not None:
            form = permit if isinstance(allow, SqlAllow) else _template(permit)
            test = _restrict(t.c.id, allow, form, per_row=True)
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


_VIEWS = 256  # permitted sets whose statistics a BM25 index keeps
_VIEW_TERMS = 100_000  # terms whose frequency one view keeps


@dataclass
class _ViewStats:
    """A permitted set's BM25 statistics: its rows, their mean length, whether it is every
    row of the index, and the document frequencies among them of the terms asked so far."""

    n: int
    avgdl: float
    everything: bool
    df: dict[str, int] = field(default_factory=dict)


class PgBm25Index:
    """``LexicalIndex`` over the ``rs_bm25_*_<collection id>`` tables."""

    backend = "bm25"

    def __init__(
        self,
        engine: Engine,
        collection_id: int,
        *,
        analyzer: Analyzer | None = None,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.engine = engine
        self.collection_id = int(collection_id)
        self.analyzer = analyzer or Analyzer()
        self.k1, self.b = float(k1), float(b)
        post, docs, terms, stats = collection_tables(self.collection_id)["bm25"]
        self.post = _table(
            post,
            Column("term", Text, primary_key=True),
            Column("id", BigInteger, primary_key=True, autoincrement=False),
            Column("tf", Integer, nullable=False),
            Column("len", Integer, nullable=False),
            Index(f"{post}_id", "id"),  # removals find a document's postings
            # a query term's postings as an index-only scan (no heap page per posting)
            Index(f"{post}_cover", "term", "id", postgresql_include=["tf", "len"]),
        )
        self.docs = _table(
            docs,
            Column("id", BigInteger, primary_key=True, autoincrement=False),
            Column("len", Integer, nullable=False),
        )
        self.term_df = _table(
            terms,
            Column("term", Text, primary_key=True),
            Column("df", BigInteger, nullable=False),
        )
        self._views: OrderedDict[tuple[object, ...], _ViewStats] = OrderedDict()  # SqlAllow's
        self._views_lock = threading.Lock()
        self._permits = _Permits()
        # scoring statements by kind (``_KINDS``) and ``_shape``
        self._scoring: dict[tuple[str, str], Select[Any]] = {}
        self.stats = _table(
            stats,
            Column("one", Integer, primary_key=True, autoincrement=False),
            Column("docs", BigInteger, nullable=False),
            Column("total", BigInteger, nullable=False),
        )

    def create(self, conn: Connection) -> None:
        for table in (self.post, self.docs, self.term_df, self.stats):
            table.create(conn, checkfirst=True)
        for index in self.post.indexes:  # tables made before an index was added gain it
            index.create(conn, checkfirst=True)
        first = pg_insert(self.stats).values(one=1, docs=0, total=0)
        conn.execute(first.on_conflict_do_nothing())

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(self.stats.c.docs)).scalar() or 0)

    def ids(self) -> I64:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.docs.c.id).order_by(self.docs.c.id))
            return np.fromiter(rows.scalars(), dtype=np.int64)

    def terms(self, ids: npt.ArrayLike) -> list[dict[str, int]]:
        """Each id's analysed terms and their frequencies as indexed (``{}`` if absent)."""
        id_list = _ids(ids)
        out: dict[int, dict[str, int]] = {i: {} for i in id_list}
        with self.engine.connect() as conn:
            for start in range(0, len(id_list), 10_000):
                part = bindparam("ids", id_list[start : start + 10_000], type_=ARRAY(BigInteger))
                p = self.post
                for cid, term, tf in conn.execute(
                    select(p.c.id, p.c.term, p.c.tf).where(p.c.id == any_(part))
                ):
                    out[int(cid)][str(term)] = int(tf)
        return [out[i] for i in id_list]

    def add(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            self.add_in(conn, ids, texts)

    def remove(self, ids: npt.ArrayLike) -> int:
        with self.engine.begin() as conn:
            return self.remove_in(conn, ids)

    def add_in(self, conn: Connection, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        id_list = _ids(ids)
        if not id_list:
            return
        postings: list[str] = []
        docs: list[str] = []
        df: Counter[str] = Counter()
        total = 0
        for cid, text in zip(id_list, texts, strict=True):
            terms = self.analyzer(text)
            docs.append(f"{cid}\t{len(terms)}\n")
            total += len(terms)
            counts = Counter(terms)
            df.update(counts.keys())
            # COPY's text format: analysed terms are word characters, nothing to escape
            postings += [f"{t}\t{cid}\t{n}\t{len(terms)}\n" for t, n in counts.items()]
        _copy(conn, f"COPY {self.docs.name} (id, len) FROM STDIN", "".join(docs).encode())
        _copy(conn, f"COPY {self.post.name} (term, id, tf, len) FROM STDIN",
              "".join(postings).encode())  # fmt: skip
        rows = [{"term": t, "df": n} for t, n in df.items()]
        for start in range(0, len(rows), 5000):
            up = pg_insert(self.term_df).values(rows[start : start + 5000])
            grown = {"df": self.term_df.c.df + up.excluded.df}
            conn.execute(up.on_conflict_do_update(index_elements=["term"], set_=grown))
        self._count_rows(conn, len(id_list), total)
        self._forget()

    def _forget(self) -> None:
        """Drop the statistics kept per permitted set (this object wrote: another process's
        writes are seen through the caller's new ``IdFilter`` or ``SqlAllow.key``)."""
        self._permits.clear()
        with self._views_lock:
            self._views.clear()

    def _count_rows(self, conn: Connection, docs: int, total: int) -> None:
        st = self.stats.c
        conn.execute(update(self.stats).values(docs=st.docs + docs, total=st.total + total))

    def remove_in(self, conn: Connection, ids: npt.ArrayLike) -> int:
        id_list = _ids(ids)
        if not id_list:
            return 0
        wanted = bindparam("gone", id_list, type_=ARRAY(BigInteger))
        lengths = (
            conn.execute(
                delete(self.docs).where(self.docs.c.id == any_(wanted)).returning(self.docs.c.len)
            )
            .scalars()
            .all()
        )
        if not lengths:
            return 0
        gone = conn.execute(
            delete(self.post).where(self.post.c.id == any_(wanted)).returning(self.post.c.term)
        ).scalars()
        df = Counter(gone)
        if df:
            v = values(column("term", Text), column("n", BigInteger), name="gone_terms").data(
                list(df.items())
            )
            conn.execute(
                update(self.term_df)
                .where(self.term_df.c.term == v.c.term)
                .values(df=self.term_df.c.df - v.c.n)
            )
            conn.execute(delete(self.term_df).where(self.term_df.c.df <= 0))
        self._count_rows(conn, -len(lengths), -sum(lengths))
        self._forget()
        return len(lengths)

    def save(self, path: Path | None = None) -> None:
        """Nothing to write (every change is committed): ``tend``s the tables."""
        tend(self.engine, [t.name for t in (self.post, self.docs, self.term_df)])

    @classmethod
    def load(cls, path: Path) -> PgBm25Index:
        raise TypeError("a database index is opened with its engine, never loaded from a path")

    def __contains__(self, item: object) -> bool:
        return _has_id(self.engine, self.docs, item)

    def upsert(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            self.remove_in(conn, ids)
            self.add_in(conn, ids, texts)

    def _view(
        self, conn: Connection, allow: Allow | None, permit: _Permit | None, terms: Sequence[str]
    ) -> _ViewStats:
        """The statistics of the permitted rows (every row without ``allow``): their number,
        mean length, and the document frequency among them of each of ``terms``. Kept per
        permitted set (an ``IdFilter`` object, or an ``SqlAllow`` naming itself with ``key``:
        both hold the collection's generation, so a committed change starts afresh), as the
        embedded engine keeps its views: a common term's frequency is counted once, not on
        every request."""
        key = allow.key if isinstance(allow, SqlAllow) else None
        if permit is not None:
            view = permit.view
            if view is None:
                view = permit.view = self._count(conn, allow, permit)
        else:
            with self._views_lock:
                view = self._views.get(key) if key is not None else None
                if view is not None and key is not None:
                    self._views.move_to_end(key)
            if view is None:
                view = self._count(conn, allow, None)
                if key is not None:
                    with self._views_lock:
                        self._views[key] = view
                        while len(self._views) > _VIEWS:
                            self._views.popitem(last=False)
        missing = [t for t in terms if t not in view.df]
        if missing and view.n:
            wanted = bindparam("terms", missing, type_=ARRAY(Text))
            if view.everything:  # every row is permitted: the collection's own frequencies
                tdf = self.term_df
                found = conn.execute(
                    select(tdf.c.term, tdf.c.df).where(tdf.c.term == any_(wanted))
                ).all()
            else:
                p = self.post
                where = _restrict(p.c.id, _required(allow), permit)
                counting = select(p.c.term, func.count()).where(p.c.term == any_(wanted))
                if where is not None:
                    counting = counting.where(where)
                counting = counting.group_by(p.c.term)
                if permit is not None and (permit.bits is not None or not permit.exclude):
                    found = conn.execute(counting).all()  # a test per posting, or probes
                else:
                    with self.engine.begin() as own:
                        # the postings of the terms against the hashed list: probing each
                        # listed id (the plan PostgreSQL picks, guessing 200 ids) reads every
                        # posting of each
                        own.execute(select(func.set_config("enable_nestloop", "off", True)))
                        found = own.execute(counting).all()
            counted = {str(t): int(n) for t, n in found}
            if len(view.df) > _VIEW_TERMS:
                view.df.clear()
            view.df.update({t: counted.get(t, 0) for t in missing})
        return view

    def _count(self, conn: Connection, allow: Allow | None, permit: _Permit | None) -> _ViewStats:
        """A fresh view: the permitted rows' number and mean length."""
        if permit is not None:
            n, length, everything = permit.n, permit.length, permit.every
        else:
            docs, total = conn.execute(select(self.stats.c.docs, self.stats.c.total)).one()
            n, length, everything = int(docs), int(total), True
            if allow is not None:
                d = self.docs
                row = conn.execute(
                    select(func.count(), func.coalesce(func.sum(d.c.len), 0)).where(
                        _permitted(d.c.id, allow)
                    )
                ).one()
                everything = int(row[0]) == n
                n, length = int(row[0]), int(row[1])
        return _ViewStats(n, max(length / n, 1e-9) if n else 1.0, everything)

    def search(self, query: str, top_k: int, allow: Allow | None = None) -> LexicalHits:
        """The ``top_k`` best permitted chunks, scored with the statistics of the permitted
        chunks alone (their number, mean length and each term's document frequency among
        them, as the embedded engine does); ties to the lower id.

        Each term's idf comes from the view's statistics, so the scoring statement is one
        pass over the query terms' postings (an index-only scan), in double precision, with
        the permitted set materialised once -- or not at all when it is every row."""
        empty = LexicalHits(np.empty(0, np.float32), np.empty(0, np.int64))
        counts = Counter(self.analyzer(query))
        if not counts:
            return empty
        terms = sorted(counts)
        with reading(self.engine) as conn:
            permit = (
                self._permits.get(conn, self.docs, allow) if isinstance(allow, IdFilter) else None
            )
            view = self._view(conn, allow, permit, terms)
            if not view.n:
                return empty
            k1, b = self.k1, self.b
            n = float(view.n)
            # a term's weight for a row is w * tf / (tf + c + d * len)
            weights = []
            for term in terms:
                df = view.df.get(term, 0)
                if df:
                    idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
                    weights.append((term, idf * counts[term] * (k1 + 1.0)))
            if not weights:
                return empty
            where = (
                None
                if allow is None or view.everything
                else _restrict(self.post.c.id, allow, permit)
            )
            shape = "all" if where is None else None
            if shape is None and not isinstance(allow, SqlAllow):
                shape = _shape(permit)
            scoring = _Scoring(self.post, k1 * (1.0 - b), k1 * b / view.avgdl, where, top_k)
            if shape is not None:  # the scoring statements are kept for the form of set
                scoring.kept = self._scoring
                scoring.shape, scoring.values = shape, _permit_params(permit)
                if where is not None and not all((k, shape) in self._scoring for k in _KINDS):
                    # kept without the set's values
                    scoring.form = _restrict(self.post.c.id, _required(allow), _template(permit))
            found = scoring.pruned(conn, weights, view.df) if len(weights) > 1 else None
            if found is None:
                found = scoring.full(conn, weights)
        return LexicalHits(
            np.array([r.score for r in found], dtype=np.float32),
            np.array([r.id for r in found], dtype=np.int64),
        )


def _query_terms(weights: Sequence[tuple[str, float]], name: str) -> Any:
    """The query terms and their weights as a relation ``name(term, w)``: two bound arrays,
    so the statement's text is the same whatever the query (SQLAlchemy compiles it once)."""
    values = _bound(name, weights)
    terms = bindparam(f"{name}_terms", values[f"{name}_terms"], type_=ARRAY(Text))
    ws = bindparam(f"{name}_w", values[f"{name}_w"], type_=ARRAY(Float))
    return func.unnest(terms, ws).table_valued("term", "w").render_derived(name=name)


def _bound(name: str, weights: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """The values of ``_query_terms(weights, name)``'s parameters."""
    return {f"{name}_terms": [t for t, _ in weights], f"{name}_w": [float(w) for _, w in weights]}


# BM25 scoring statements (``_Scoring``); "pruned1": pruned with one essential term
_KINDS = ("full", "pruned", "pruned1")
_PRUNE_SHARE = 0.05  # terms whose weights together stay below this share of the largest
_THETA_SHARE = 0.8  # ... or below this share of the guessed threshold (``_theta_guess``)
_PRUNE_POSTINGS = 1000  # a guessed cut must skip at least this many postings


def _theta_guess(ordered: Sequence[tuple[str, float]], df: dict[str, int], k: int) -> float:
    """A guess at the ``k``-th best score of a query (terms best weight first): the weight of
    the term whose rows, with those of every better term, first number ``k``, times 0.4
    (one occurrence in a row of average length gets ``w / (1 + k1)``, 0.45 ``w`` at ``k1``
    1.2); 0 when the terms hold fewer than ``k`` rows."""
    rows = 0
    for term, w in ordered:
        rows += df.get(term, 0)
        if rows >= k:
            return 0.4 * w
    return 0.0


_SLACK_REL, _SLACK_ABS = 1e-6, 2e-9  # margins on pruning bounds (ranks compare at 1e-9)


@dataclass
class _Scoring:
    """One BM25 query's scoring statements. A term's weight for a row is
    ``w * tf / (tf + c + d * len)`` (``w``: its idf, query count and ``k1 + 1``), below ``w``
    whatever the row; a row's score is the sum over the query terms it holds."""

    post: Table
    c: float
    d: float
    where: Any  # the permitted rows (None: every row)
    top_k: int
    kept: dict[tuple[str, str], Select[Any]] | None = None  # by kind and form of set
    shape: str = ""  # this set's form (``_shape``)
    values: dict[str, Any] = field(default_factory=dict)  # the set's bound values
    form: Any = None  # ``where`` without the set's values, for a statement to keep

    def _statement(self, kind: str, make: Callable[[Any], Select[Any]]) -> Select[Any]:
        """The ``kind`` statement (``_KINDS``) for this form of set: kept (built once per
        form, without the set's values: ``make(self.form)``) or, for a set that cannot be
        kept, built with its values (``make(None)``, ``self.where``)."""
        if self.kept is None:
            return make(None)
        found = self.kept.get((kind, self.shape))
        if found is None:
            found = make(self.form)
            self.kept[kind, self.shape] = found
        return found

    def _rows(self, weights: Sequence[tuple[str, float]], name: str, where: Any = None) -> Any:
        """``(id, s)``: each permitted posting of the terms and its weight. Each term's
        postings are a ``LATERAL`` range of the ``(term, id)`` index, whatever the planner's
        statistics say: joined plainly, a table never analysed (autovacuum behind a bulk
        ingest, statistics lost at an unclean stop) was scanned whole for every query, 40 ms
        at 10k chunks instead of 2."""
        p = self.post
        q = _query_terms(weights, name)
        part = q.c.w * p.c.tf / (p.c.tf + bindparam("c", self.c, type_=Float)
                                 + bindparam("d", self.d, type_=Float) * p.c.len)  # fmt: skip
        rows = select(p.c.id, part.label("s")).where(p.c.term == q.c.term)
        where = self.where if where is None else where
        rows = rows if where is None else rows.where(where)
        postings = rows.offset(0).lateral(name + "_l")  # OFFSET: never pulled up into a join
        return (
            select(postings.c.id, postings.c.s)
            .select_from(q.join(postings, true()))
            .subquery(name + "_p")
        )

    def _ranked(self, ident: Any, score: Any, *extra: Any) -> Select[Any]:
        # a sum's last bits follow the order PostgreSQL adds in: equal scores are ranked by
        # id at 1e-9 (as the embedded engine ranks its float32 scores)
        return (
            select(ident.label("id"), score.label("score"), *extra)
            .order_by(func.round(score * 1e9).desc(), ident)
            .limit(bindparam("top_k", self.top_k, type_=Integer))
        )

    def full(self, conn: Connection, weights: Sequence[tuple[str, float]]) -> list[Any]:
        """Every permitted posting of every query term, summed per row. The statement is
        built once per form of permitted set (``kept``); the terms, their weights, the
        length constants, ``top_k`` and the set are bound when it runs."""

        def make(form: Any) -> Select[Any]:
            post = self._rows(weights, "q", form)
            return self._ranked(post.c.id, func.sum(post.c.s)).group_by(post.c.id)

        values = {**_bound("q", weights), "c": self.c, "d": self.d, "top_k": self.top_k,
                  **self.values}  # fmt: skip
        return list(conn.execute(self._statement("full", make), values).all())

    def pruned(
        self,
        conn: Connection,
        weights: Sequence[tuple[str, float]],
        df: dict[str, int] | None = None,
    ) -> list[Any] | None:
        """The same top ``k`` without reading the postings of the query's commonest terms
        (MaxScore, as ``indexes.bm25_topk``; ``None`` when it cannot be sure, then ``full``).

        The terms whose largest weights ``w`` sum to under ``_PRUNE_SHARE`` of the largest
        (a stopword-like term in nearly every row: idf near 0) are *non-essential*: their
        sum ``R`` bounds what they add to any row. The other terms' postings give partial
        scores; ``theta``, the ``k``-th best partial, is at most the ``k``-th best full
        score. A row without an essential term scores at most ``R``, and a row whose
        partial plus ``R`` stays under ``theta`` cannot reach the top ``k``: when ``R`` is
        under ``theta`` (margins above), only the rest are candidates, and each gets its
        non-essential terms' weights by index lookups of (term, its id).

        With ``df`` (each term's rows among the permitted ones), common terms are also
        non-essential while their weights sum to under a guess of ``theta``
        (``_theta_guess``) and their postings outnumber the rest's: a wrong guess costs a
        second statement, never a wrong result."""
        ordered = sorted(weights, key=lambda tw: -tw[1])
        limit = _PRUNE_SHARE * ordered[0][1]
        if df is not None:
            limit = max(limit, _THETA_SHARE * _theta_guess(ordered, df, self.top_k))
        cut, rest = len(ordered), 0.0
        while cut > 1 and rest + ordered[cut - 1][1] <= limit:
            cut -= 1
            rest += ordered[cut][1]
        if cut == len(ordered):
            return None
        essential, other = ordered[:cut], ordered[cut:]
        if df is not None and rest > _PRUNE_SHARE * ordered[0][1]:  # a guessed cut: worth it?
            skipped = sum(df.get(t, 0) for t, _ in other)
            if skipped < max(_PRUNE_POSTINGS, sum(df.get(t, 0) for t, _ in essential)):
                return None
        values = {**_bound("qe", essential), **_bound("qn", other), "rest": rest,
                  "kth": self.top_k - 1, "c": self.c, "d": self.d, "top_k": self.top_k,
                  **self.values}  # fmt: skip
        kind = "pruned" if len(essential) > 1 else "pruned1"
        stmt = self._statement(kind, lambda form: self._pruned(essential, other, form))
        found = list(conn.execute(stmt, values).all())
        top = found[0].theta if found else None
        if top is None or rest >= float(top) * (1.0 - _SLACK_REL) - _SLACK_ABS:
            return None  # rows without an essential term might rank: score them all
        return found

    def _pruned(
        self, essential: Sequence[tuple[str, float]], other: Sequence[tuple[str, float]], form: Any
    ) -> Select[Any]:
        """``pruned``'s statement: the terms (``qe``: essential, ``qn``: the rest), their
        weights' sum ``rest``, ``kth`` (``top_k - 1``) and the set bound when it runs."""
        post = self._rows(essential, "qe", form)
        if len(essential) > 1:
            ess = select(post.c.id, func.sum(post.c.s).label("part")).group_by(post.c.id)
        else:  # one term: one posting a row, nothing to add up (at 100k chunks, a common
            # term's tens of thousands of postings were hashed for nothing)
            ess = select(post.c.id, post.c.s.label("part"))
        ess_cte = ess.cte("ess").prefix_with("MATERIALIZED")
        kth = (  # the k-th best partial score, found once (a scalar subquery in two places
            # was two sorts of every partial score)
            select(ess_cte.c.part.label("theta"))
            .order_by(ess_cte.c.part.desc())
            .offset(bindparam("kth", type_=Integer))
            .limit(1)
            .cte("kth")
            .prefix_with("MATERIALIZED")
        )
        theta = select(kth.c.theta).scalar_subquery()
        floor = func.coalesce(theta, -1.0) * (1.0 - _SLACK_REL) - _SLACK_ABS
        cand = (
            select(ess_cte.c.id, ess_cte.c.part)
            .where(ess_cte.c.part + bindparam("rest", type_=Float) >= floor)
            .cte("cand")
            .prefix_with("MATERIALIZED")
        )
        p2 = self.post.alias("p2")
        qn = _query_terms(other, "qn")
        c, d = bindparam("c", self.c, type_=Float), bindparam("d", self.d, type_=Float)
        # each candidate's other terms as probes of (term, id), one per term: joined plainly,
        # PostgreSQL read every posting of the candidate by id (~40 at 100k chunks) and
        # hashed them against the terms, 17 us a candidate instead of a few
        probe = (
            select(p2.c.tf, p2.c.len)
            .where(p2.c.term == qn.c.term, p2.c.id == cand.c.id)
            .correlate(qn, cand)  # the candidate two levels out, not a FROM of its own
            .offset(0)
            .lateral("qn_l")
        )
        extra = (
            select(func.sum(qn.c.w * probe.c.tf / (probe.c.tf + c + d * probe.c.len)))
            .select_from(qn.join(probe, true()))
            .scalar_subquery()
        )
        score = cand.c.part + func.coalesce(extra, 0.0)
        return self._ranked(cand.c.id, score, theta.label("theta"))


def _required(allow: Allow | None) -> Allow:
    assert allow is not None  # a view that is not every row has a permitted set
    return allow


def create_collection_tables(engine: Engine, dense: PgVectorIndex, lexical: PgBm25Index) -> None:
    """Create a collection's index tables if missing (concurrent callers wait their turn)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})")
        dense.create(conn)
        lexical.create(conn)
