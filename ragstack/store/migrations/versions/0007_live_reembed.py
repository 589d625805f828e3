"""live re-embedding: shadow vectors, re-embed runs, the collection's dense index name

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

* ``collections.dense_name``: which dense index (directory or table suffix) holds the pinned
  embedder's vectors; ``dense`` for every collection made before.
* ``chunk_vectors``: a chunk's vector under the model a collection is moving to (dropped
  with its chunk or its collection).
* ``reembed_runs``: one row per live re-embed (target, progress, lease, check report).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dense_name", TEXT(), nullable=False, server_default="dense"))
    op.create_table(
        "chunk_vectors",
        sa.Column("chunk_id", BIGID, nullable=False),
        sa.Column("model_id", TEXT(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("text_hash", TEXT(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["chunks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chunk_id", "model_id"),
    )
    op.create_index(
        "ix_chunk_vectors_model_hash",
        "chunk_vectors",
        ["collection_id", "model_id", "text_hash"],
        unique=False,
    )
    op.create_table(
        "reembed_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("from_model", TEXT(), nullable=False),
        sa.Column("model_id", TEXT(), nullable=False),
        sa.Column("model_path", TEXT(), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("dense_name", TEXT(), nullable=False),
        sa.Column("from_dense", TEXT(), nullable=False),
        sa.Column("status", TEXT(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("embedded", sa.Integer(), nullable=False),
        sa.Column("reused", sa.Integer(), nullable=False),
        sa.Column("message", TEXT(), nullable=False),
        sa.Column("report", TEXT(), nullable=False),
        sa.Column("owner", TEXT(), nullable=False),
        sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_reembed_runs_collection_id", "reembed_runs", ["collection_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reembed_runs_collection_id", table_name="reembed_runs")
    op.drop_table("reembed_runs")
    op.drop_index("ix_chunk_vectors_model_hash", table_name="chunk_vectors")
    op.drop_table("chunk_vectors")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("dense_name")
