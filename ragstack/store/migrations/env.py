"""Alembic environment: ragstack passes the connection in (``ragstack.store.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import ragstack.store.models  # noqa: F401  -- registers the tables on SQLModel.metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
)
with context.begin_transaction():
    context.run_migrations()
