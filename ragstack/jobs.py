"""Ingest jobs for the API: queued in SQL, run one at a time on a worker thread.

A job's row is its whole state (status, progress, counts, per-file errors), so any API
process can report it. The process that accepted a job holds a lease on it: it renews the
row's ``heartbeat_at`` every few seconds while the job is queued or running. A job whose lease
has lapsed (its process died) is marked ``interrupted`` by whichever process looks next -- at
start, or when the job is read -- never while its owner lives, so several API processes (or
replicas) share one database safely. The ingest itself is crash-safe: re-running it picks up
where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from ragstack.errors import NotFoundError, RagstackError
from ragstack.ingest.uploads import finish, staging_dir
from ragstack.service import IngestRequest, Ragstack
from ragstack.store.models import JobRow

log = logging.getLogger("ragstack.jobs")

LEASE_S = 30.0  # a job unrenewed this long lost its process
RENEW_S = 5.0
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class JobInfo:
    id: str
    collection: str
    principal: str
    tenant: str | None  # of the key that submitted it: the job is visible within that tenant
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
    return JobInfo(r.id, r.collection, r.principal, r.tenant, r.key_id, json.loads(r.sources),
                   r.status, r.total, r.done, r.chunks, json.loads(r.counts), json.loads(r.errors),
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
    def __init__(self, svc: Ragstack, *, lease_s: float = LEASE_S) -> None:
        self.svc = svc
        self.lease_s = lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragstack-ingest")
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="ragstack-job-lease",
                                         daemon=True)  # fmt: skip
        self._renewer.start()
        self._expire()  # whatever a dead process left behind
        self._sweep_staged()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def submit(
        self,
        request: IngestRequest,
        *,
        principal: str,
        key_id: str | None,
        sources: list[str],
        job_id: str | None = None,
        staged: Path | None = None,
        keep_in: Path | None = None,
        tenant: str | None = None,
    ) -> JobInfo:
        """Queue an ingest. ``staged``: the folder of its uploads, deleted when the job ends
        (their files moved to ``keep_in`` first, when originals are kept); ``tenant``: the
        submitting key's (its job is seen within it)."""
        row = JobRow(id=job_id or self.new_id(), collection=request.collection,
                     principal=principal, tenant=tenant, key_id=key_id, sources=json.dumps(sources),
                     owner=self.owner, heartbeat_at=datetime.now(UTC))  # fmt: skip
        with self.svc.store.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        job = _info(row)
        self._pool.submit(self._run, job.id, request, principal, staged, keep_in)
        return job

    def _sweep_staged(self) -> None:
        """Delete the staged uploads of jobs that are over or whose process died (a crash
        must not leave unredacted originals behind)."""
        folder = staging_dir(self.svc.settings.data_dir, "x").parent
        if not folder.is_dir():
            return
        for staged in folder.iterdir():
            try:
                row = self._row(staged.name)
            except NotFoundError:
                row = None
            if row is None or row.status not in ACTIVE:
                finish(staged, None)

    def _expire(self, job_id: str | None = None) -> None:
        """Mark active jobs whose lease lapsed (all, or just ``job_id``) interrupted."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.lease_s)
        q = update(JobRow).where(
            col(JobRow.status).in_(ACTIVE),
            col(JobRow.owner) != self.owner,
            (col(JobRow.heartbeat_at).is_(None)) | (col(JobRow.heartbeat_at) < cutoff),
        )
        if job_id is not None:
            q = q.where(col(JobRow.id) == job_id)
        message = "the server running it stopped before it finished"
        with self.svc.store.session() as s:
            s.execute(q.values(status="interrupted", message=message,
                               finished_at=datetime.now(UTC)))  # fmt: skip
            s.commit()

    def _renew(self) -> None:
        period = min(RENEW_S, self.lease_s / 3)
        while not self._stop.wait(period):
            try:
                with self.svc.store.session() as s:
                    s.execute(
                        update(JobRow)
                        .where(col(JobRow.owner) == self.owner, col(JobRow.status).in_(ACTIVE))
                        .values(heartbeat_at=datetime.now(UTC))
                    )
                    s.commit()
            except Exception as exc:  # the database may be briefly away: try again next time
                log.warning("job lease renewal failed: %s", type(exc).__name__)

    def get(self, job_id: str) -> JobInfo:
        row = self._row(job_id)
        if row.status in ACTIVE and row.owner != self.owner and self._lapsed(row.heartbeat_at):
            self._expire(job_id)
            row = self._row(job_id)
        return _info(row)

    def _row(self, job_id: str) -> JobRow:
        with self.svc.store.session() as s:
            row: JobRow | None = s.execute(
                select(JobRow).where(col(JobRow.id) == job_id)
            ).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return row

    def _lapsed(self, heartbeat: datetime | None) -> bool:
        if heartbeat is None:
            return True
        if heartbeat.tzinfo is None:
            heartbeat = heartbeat.replace(tzinfo=UTC)
        return (datetime.now(UTC) - heartbeat).total_seconds() > self.lease_s

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
        self._stop.set()

    def _update(self, job_id: str, **values: Any) -> None:
        with self.svc.store.session() as s:
            s.execute(update(JobRow).where(col(JobRow.id) == job_id).values(**values))
            s.commit()

    def _run(
        self,
        job_id: str,
        request: IngestRequest,
        principal: str,
        staged: Path | None = None,
        keep_in: Path | None = None,
    ) -> None:
        try:
            self._ingest(job_id, request, principal)
        finally:
            if staged is not None:
                finish(staged, keep_in)

    def _ingest(self, job_id: str, request: IngestRequest, principal: str) -> None:
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
