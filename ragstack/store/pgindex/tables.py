"""A collection's PostgreSQL index tables: their names, creation helpers, binary ``COPY``,
and the upkeep (``tend``) that keeps their statistics and visibility maps fresh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, MetaData, Table, select

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def has_id(engine: Engine, table: Table, item: object) -> bool:
    """Whether ``table`` has a row whose ``id`` is ``item`` (an int)."""
    if not isinstance(item, int | np.integer):
        return False
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(table.c.id == int(item))).first() is not None


PGCOPY = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY: signature, flags, extension


def copy_in(conn: Connection, statement: str, data: bytes) -> None:
    """``COPY ... FROM STDIN`` of ``data`` on the connection, inside its transaction."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(data), 1 << 22):
            copy.write(data[start : start + (1 << 22)])


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


def own_table(name: str, *items: Any) -> Table:
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


def int_ids(values_: npt.ArrayLike) -> list[int]:
    return [int(i) for i in np.asarray(values_, dtype=np.int64).reshape(-1)]
