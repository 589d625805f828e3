"""trust: document namespaces, content-only versions, tenants on jobs and audit rows,
server secrets, an index generation

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:10:00

* ``documents.namespace``: a document is (collection, namespace, uri), so an API caller's
  upload or URL lives in its own namespace and never replaces someone else's document.
* ``documents.version`` holds the content's version only: the ``+acl:<hash>`` suffix the file
  and SQL connectors used to append is stripped (the ACL is compared on its own now, so an
  ACL change updates ACL rows without re-parsing).
* ``ingest_jobs.tenant`` and ``audit_log.tenant``: jobs and audit rows are seen within the
  tenant of the key that made them.
* ``server_secrets``: signing and id-mapping keys every replica shares.
* ``collections.index_generation``: bumped only when chunks change (readers reopen indexes on
  it; an ACL change bumps ``generation`` alone).
* ``ix_answer_cache_view``: answers are looked up by the caller's view (its scope), not by the
  collection's generation.

SQLite cannot drop a table constraint, so ``documents`` is rebuilt (Alembic batch mode). A
rebuild drops the old table, and with foreign keys on, SQLite's implicit ``DELETE`` would
cascade into ``chunks`` and ``acl_entries``: foreign keys are switched off first (outside any
transaction, which ``ragstack.store.migrate.upgrade`` guarantees for an existing database),
and the migration refuses to run on a non-empty database if they are still on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign_keys_off() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    still_on = bind.exec_driver_sql("PRAGMA foreign_keys").scalar()
    has_rows = bind.exec_driver_sql("SELECT 1 FROM documents LIMIT 1").first() is not None
    if still_on and has_rows:
        raise RuntimeError(
            "migration 0004 rebuilds the documents table and needs SQLite's foreign keys off; "
            "run it on a connection that has not started a transaction (ragstack db upgrade)"
        )


def upgrade() -> None:
    _foreign_keys_off()
    op.create_table(
        "server_secrets",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("index_generation", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute("UPDATE collections SET index_generation = generation")
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "namespace", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""
            )
        )
        batch_op.drop_constraint("uq_document_uri", type_="unique")
        batch_op.create_unique_constraint(
            "uq_document_namespace_uri", ["collection_id", "namespace", "uri"]
        )
    with op.batch_alter_table("answer_cache", schema=None) as batch_op:
        batch_op.create_index("ix_answer_cache_view", ["collection_id", "scope"], unique=False)
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, version FROM documents WHERE version LIKE :pattern"),
        {"pattern": "%+acl:%"},
    ).all()
    for doc_id, version in rows:
        bind.execute(
            sa.text("UPDATE documents SET version = :v WHERE id = :i"),
            {"v": str(version).split("+acl:", 1)[0], "i": int(doc_id)},
        )


def downgrade() -> None:
    _foreign_keys_off()
    with op.batch_alter_table("answer_cache", schema=None) as batch_op:
        batch_op.drop_index("ix_answer_cache_view")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint("uq_document_namespace_uri", type_="unique")
        batch_op.create_unique_constraint("uq_document_uri", ["collection_id", "uri"])
        batch_op.drop_column("namespace")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("tenant")
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.drop_column("tenant")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("index_generation")
    op.drop_table("server_secrets")
