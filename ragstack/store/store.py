"""``Store``: every read and write of the SQL source of truth goes through here.

Each write that changes what a collection holds runs in one transaction and bumps the
collection's ``generation``; the indexes follow from the ids the write returns and are
reconciled against ``live_chunk_ids`` whenever a collection is opened.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ragstack.store.collections import CollectionStore
from ragstack.store.engine import pinned
from ragstack.store.models import ServerSecretRow, utcnow
from ragstack.store.reads import DocumentReads
from ragstack.store.runs import RunLog
from ragstack.store.writes import DocumentWrites


class Store(CollectionStore, DocumentWrites, DocumentReads, RunLog):
    """The SQL source of truth, by capability (see each base)."""

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within it, this context's reads on the request path (``read``, the database
        indexes' searches) share one connection, checked out (and, on PostgreSQL, pinged)
        once, at the first read: a search was four checkouts, each a ping round trip and
        the pool's work; and a collection's row is read once (``get_collection``). Only on
        PostgreSQL (SQLite's connections are local), and never across threads: a worker
        thread starts without it and takes connections of its own. Statements that need a
        transaction (settings of their own) still take one."""
        with pinned(self.engine):
            yield

    def create_schema(self) -> None:
        """Create or migrate the schema to the newest revision (Alembic)."""
        from ragstack.store.migrate import upgrade

        upgrade(self.engine)

    def secret(self, name: str) -> bytes:
        """A random 32-byte secret every process on this database shares, made on first use
        (the first writer wins a race; everyone reads back the stored one)."""
        table = ServerSecretRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
        if found is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values(name=name, value=secrets.token_hex(32),
                                                      created_at=utcnow()))  # fmt: skip
            except IntegrityError:
                pass  # another process made it first
            with self.engine.connect() as conn:
                found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
        return bytes.fromhex(str(found))
