"""Ingest jobs for the API: queued in SQL, run one at a time on a worker thread.

A job's row is its whole state (status, progress, counts, per-file errors), so any API
process can report it; a job still queued or running when its process died is marked
``interrupted`` at the next start (the ingest itself is crash-safe: re-running it picks up
where it stopped).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from ragstack.errors import NotFoundError, RagstackError
from ragstack.service import IngestRequest, Ragstack
from ragstack.store.models import JobRow

log = logging.getLogger("ragstack.jobs")


@dataclass(frozen=True)
class JobInfo:
    id: str
    collection: str
    principal: str
    key_id: str | None
    sources: list[str]
    status: str
    total: int | None
    done: int
    chunks: int
    counts: dict[str, int]
    errors: list[dict[str, str]]
    message: str
    created_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "collection": self.collection,
            "status": self.status,
            "sources": self.sources,
            "progress": {"done": self.done, "total": self.total, "chunks": self.chunks},
            "counts": self.counts,
            "errors": self.errors,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _info(r: JobRow) -> JobInfo:
    return JobInfo(r.id, r.collection, r.principal, r.key_id, json.loads(r.sources), r.status,
                   r.total, r.done, r.chunks, json.loads(r.counts), json.loads(r.errors),
                   r.message, r.created_at, r.finished_at)  # fmt: skip


class _Progress:
    """Writes a job's progress to SQL at most every half second."""

    def __init__(self, jobs: Jobs, job_id: str) -> None:
        self.jobs, self.job_id = jobs, job_id
        self.done = self.chunks = 0
        self.last = 0.0

    def start(self, total: int | None) -> None:
        self.jobs._update(self.job_id, total=total)

    def advance(self, documents: int, chunks: int) -> None:
        self.done += documents
        self.chunks += chunks
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self.jobs._update(self.job_id, done=self.done, chunks=self.chunks)

    def finish(self) -> None:
        self.jobs._update(self.job_id, done=self.done, chunks=self.chunks)


class Jobs:
    def __init__(self, svc: Ragstack) -> None:
        self.svc = svc
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragstack-ingest")
        with svc.store.session() as s:  # whatever a dead process left behind
            s.execute(
                update(JobRow)
                .where(col(JobRow.status).in_(["queued", "running"]))
                .values(status="interrupted", message="the server stopped before it finished")
            )
            s.commit()

    def submit(
        self, request: IngestRequest, *, principal: str, key_id: str | None, sources: list[str]
    ) -> JobInfo:
        row = JobRow(id=uuid.uuid4().hex, collection=request.collection, principal=principal,
                     key_id=key_id, sources=json.dumps(sources))  # fmt: skip
        with self.svc.store.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        job = _info(row)
        self._pool.submit(self._run, job.id, request, principal)
        return job

    def get(self, job_id: str) -> JobInfo:
        with self.svc.store.session() as s:
            row = s.execute(select(JobRow).where(col(JobRow.id) == job_id)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return _info(row)

    def wait(self, job_id: str, timeout: float = 60.0) -> JobInfo:
        """Poll until the job ends (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.status not in ("queued", "running") or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _update(self, job_id: str, **values: Any) -> None:
        with self.svc.store.session() as s:
            s.execute(update(JobRow).where(col(JobRow.id) == job_id).values(**values))
            s.commit()

    def _run(self, job_id: str, request: IngestRequest, principal: str) -> None:
        self._update(job_id, status="running")
        try:
            summary = self.svc.ingest(request, principal=principal,
                                      progress=_Progress(self, job_id))  # fmt: skip
        except RagstackError as exc:
            self._finish(job_id, "failed", message=f"{exc.code}: {exc}")
            return
        except Exception:  # a bug: logged with its trace, reported without its message
            log.exception("ingest job %s failed", job_id)
            self._finish(job_id, "failed", message="internal error")
            return
        errors = [{"uri": p.uri, "kind": str(p.kind), "reason": p.reason}
                  for p in summary.problems]  # fmt: skip
        self._finish(job_id, "completed", counts=json.dumps(summary.counts()),
                     errors=json.dumps(errors), chunks=summary.chunks)  # fmt: skip

    def _finish(self, job_id: str, status: str, **values: Any) -> None:
        self._update(job_id, status=status, finished_at=datetime.now(UTC), **values)
