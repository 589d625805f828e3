"""audit request id

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:22:57

* ``audit_log.request_id``: the id of the request an audit row records, the one its log lines
  carry and its response returned as ``X-Request-ID`` (indexed: an operator goes from a log
  line or a client's error report to the audit row). Rows from before stay ``NULL``.

A nullable column and an index: SQLite adds both in place (Alembic's batch mode rebuilds
nothing for them), PostgreSQL likewise.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index("ix_audit_log_request_id", ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_request_id")
        batch_op.drop_column("request_id")
