"""``Store``'s ingest runs and their per-file errors."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlmodel import col

from ragstack.store.base import StoreBase
from ragstack.store.models import IngestErrorRow, IngestRunRow, utcnow


class RunLog(StoreBase):
    def start_run(self, collection_id: int, principal: str, sources: Sequence[str]) -> int:
        with self.session() as s:
            row = IngestRunRow(
                collection_id=collection_id, principal=principal, sources=json.dumps(list(sources))
            )
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self.session() as s:
            s.execute(
                update(IngestRunRow)
                .where(col(IngestRunRow.id) == run_id)
                .values(
                    status=status, counts=json.dumps(counts, sort_keys=True), finished_at=utcnow()
                )
            )
            s.commit()

    def mark_interrupted_runs(self, collection_id: int) -> int:
        """Runs still 'running' when a new one starts were killed: say so."""
        with self.session() as s:
            stale = s.scalars(
                select(col(IngestRunRow.id)).where(
                    col(IngestRunRow.collection_id) == collection_id,
                    col(IngestRunRow.status) == "running",
                )
            ).all()
            if stale:
                s.execute(
                    update(IngestRunRow)
                    .where(col(IngestRunRow.id).in_(stale))
                    .values(status="interrupted", finished_at=utcnow())
                )
                s.commit()
        return len(stale)

    def record_errors(
        self, run_id: int, collection_id: int, errors: Sequence[tuple[str, str, str]]
    ) -> None:
        if not errors:
            return
        with self.session() as s:
            s.execute(
                insert(IngestErrorRow),
                [
                    {
                        "run_id": run_id,
                        "collection_id": collection_id,
                        "uri": u,
                        "kind": k,
                        "reason": r,
                    }
                    for u, k, r in errors
                ],
            )
            s.commit()
