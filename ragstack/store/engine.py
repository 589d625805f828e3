"""The database engine: SQLite with its pragmas, or PostgreSQL through psycopg with a pool
that pings only a connection that may be dead; and the connection a request's reads share
(``pinned``, ``reading``)."""

from __future__ import annotations

import select as select_module
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from ragstack.domain import CollectionInfo
from ragstack.extras import require


def database_url(url: str) -> str:
    """``postgresql://`` (what users write) through psycopg 3, the driver ragstack ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


PG_PING_IDLE_S = 1.0  # a pooled PostgreSQL connection idle this long is pinged on checkout
PG_EF_SEARCH = 100  # pgvector's candidate list per graph search (the embedded: max(64, k))


def _has_input(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket has something to read (or is closed): nothing
    should arrive between statements, short of the server closing it."""
    try:
        return bool(select_module.select([dbapi_conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError, AttributeError):
        return True


def make_engine(url: str) -> Engine:
    url = database_url(url)
    if url.startswith("postgresql"):
        require("psycopg", "the PostgreSQL backend", "postgres")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # SQLAlchemy's pool_pre_ping, but a round trip only for a connection that sat in the
        # pool for PG_PING_IDLE_S or more, or that the server has sent something since its
        # last use (a restart or a terminated backend closes its socket): a busy server
        # reuses each within milliseconds, and a ping per checkout was a round trip per
        # request for nothing. A dead one is replaced: the pool connects anew.
        returned = record.info.get("returned_at")
        if returned is None:  # it has just connected
            return
        if time.monotonic() - returned < PG_PING_IDLE_S and not _has_input(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc

    @event.listens_for(engine, "connect")
    def _pgvector_session(dbapi_conn: Any, _record: Any) -> None:
        # the database indexes' (``store.pgindex``) search settings, once per session rather
        # than a statement per search: filtered HNSW/IVFFlat scans continue until they have
        # found their LIMIT of permitted rows; graph candidate lists of PG_EF_SEARCH (a search
        # for more rows sets its own for its transaction)
        with dbapi_conn.cursor() as cur:
            cur.execute(
                f"SET hnsw.ef_search = {PG_EF_SEARCH}; SET hnsw.iterative_scan = relaxed_order;"
                " SET ivfflat.iterative_scan = relaxed_order; SET ivfflat.probes = 10"
            )
        dbapi_conn.commit()

    return engine


@dataclass
class Pin:
    """The connection ``Store.pinned`` lends this context's reads (checked out on first use)."""

    engine: Engine
    conn: Connection | None = None
    collections: dict[str, CollectionInfo] = field(default_factory=dict)  # rows read in it


_PINNED: ContextVar[Pin | None] = ContextVar("ragstack_pinned", default=None)


def pin_of(engine: Engine) -> Pin | None:
    """The ``Pin`` this context holds for ``engine`` (``pinned``), if any."""
    pin = _PINNED.get()
    return pin if pin is not None and pin.engine is engine else None


@contextmanager
def pinned(engine: Engine) -> Iterator[None]:
    """See ``Store.pinned``."""
    if engine.dialect.name != "postgresql" or _PINNED.get() is not None:
        yield
        return
    pin = Pin(engine)
    token = _PINNED.set(pin)
    try:
        yield
    finally:
        _PINNED.reset(token)
        if pin.conn is not None:
            pin.conn.close()


def _autocommit(engine: Engine) -> Connection:
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for read statements on the request path, outside any transaction (on
    PostgreSQL a BEGIN and a ROLLBACK are round trips too): the one ``Store.pinned`` lends
    this context for ``engine``, else one of its own, returned to the pool after."""
    pin = pin_of(engine)
    if pin is not None:
        if pin.conn is None:
            pin.conn = _autocommit(engine)
        yield pin.conn
        return
    with _autocommit(engine) as conn:
        yield conn
