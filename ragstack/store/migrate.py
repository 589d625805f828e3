"""Schema migrations (Alembic) for SQLite and PostgreSQL.

``upgrade(engine)`` brings any database to the newest schema: a new one from nothing, one
made before migrations existed (every table present, no ``alembic_version``) by stamping it
at the baseline first. ``ragstack db upgrade`` / ``ragstack db current`` are the CLI.
Writing a migration: change ``models.py``, then
``python -m ragstack.store.migrate revision "what changed"`` autogenerates the next one
against a scratch SQLite database; review it, and branch on ``op.get_bind().dialect.name``
where the dialects differ.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect

BASELINE = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def current(engine: Engine) -> str | None:
    """The database's revision (``None``: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate ``engine``'s database to ``revision``; concurrent callers on PostgreSQL wait
    for each other (an advisory lock), so replicas may all run it at start."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # before any transaction: a table rebuild must not cascade into children
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                if not sqlite:
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(72616773)")  # 'rags'
                cfg = _config(conn)
                tables = set(inspect(conn).get_table_names())
                if "collections" in tables and "alembic_version" not in tables:
                    command.stamp(cfg, BASELINE)  # made by create_all before migrations
                command.upgrade(cfg, revision)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _revision(message: str) -> None:
    """Autogenerate the next revision from the models against a scratch SQLite database."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        upgrade(engine)
        with engine.begin() as conn:
            command.revision(_config(conn), message=message, autogenerate=True,
                             rev_id=f"{int(head()) + 1:04d}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        raise SystemExit('usage: python -m ragstack.store.migrate revision "message"')
    _revision(sys.argv[2])
