"""Alembic environment: ragstack passes the connection in (``ragstack.store.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import ragstack.store.models  # noqa: F401  -- registers the tables on SQLModel.metadata

connection = context.config.attributes["connection"]


def _ours(name: str | None, type_: str, _parent: object) -> bool:
    """Autogenerate ignores the per-collection index tables (``rs_*``, made at run time)."""
    return not (type_ == "table" and (name or "").startswith("rs_"))


context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    include_name=_ours,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
)
with context.begin_transaction():
    context.run_migrations()
