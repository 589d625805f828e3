"""Index health of a collection: the figures the admin page and ``GET /v1/admin/health``
show (one function, so the page and the API always agree).

Operator figures, across every document: only for admin keys.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlmodel import col

from ragstack.errors import ConflictError
from ragstack.evaluation import percentile
from ragstack.store import Store
from ragstack.store.models import AuditRow, ChunkRow, DocumentRow, IngestErrorRow, IngestRunRow


def dir_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def ingest_by_source(store: Store, collection_id: int) -> list[dict[str, Any]]:
    """The last completed ingest of every source, and how long ago it was."""
    with store.session() as s:
        runs = s.execute(
            select(IngestRunRow)
            .where(col(IngestRunRow.collection_id) == collection_id)
            .order_by(col(IngestRunRow.id).desc())
        ).scalars().all()  # fmt: skip
    now = datetime.now(UTC)
    last: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.status != "completed" or run.finished_at is None:
            continue
        for source in json.loads(run.sources):
            if source not in last:
                age = now - _aware(run.finished_at)
                last[source] = {
                    "source": source,
                    "finished_at": _aware(run.finished_at).isoformat(),
                    "age_hours": round(age.total_seconds() / 3600, 2),
                    "counts": json.loads(run.counts),
                }
    return sorted(last.values(), key=lambda r: r["source"])


def failed_files(store: Store, collection_id: int, limit: int = 50) -> list[dict[str, str]]:
    """Files whose latest recorded problem is newer than their last success (newest first)."""
    with store.session() as s:
        rows = s.execute(
            select(IngestErrorRow)
            .where(col(IngestErrorRow.collection_id) == collection_id)
            .order_by(col(IngestErrorRow.id).desc())
            .limit(limit * 4)
        ).scalars().all()  # fmt: skip
        live = set(
            s.execute(
                select(col(DocumentRow.uri)).where(col(DocumentRow.collection_id) == collection_id)
            ).scalars()
        )
    seen: dict[str, dict[str, str]] = {}
    for r in rows:
        if r.uri not in seen and r.uri not in live:
            seen[r.uri] = {"uri": r.uri, "kind": r.kind, "reason": r.reason,
                           "at": _aware(r.at).isoformat()}  # fmt: skip
    return list(seen.values())[:limit]


def pii_and_flags(store: Store, collection_id: int) -> tuple[dict[str, int], int]:
    """PII placeholders by type over all documents, and chunks flagged instruction-like."""
    counts: Counter[str] = Counter()
    with store.session() as s:
        for raw in s.execute(
            select(col(DocumentRow.pii_counts)).where(
                col(DocumentRow.collection_id) == collection_id
            )
        ).scalars():
            counts.update(json.loads(raw or "{}"))
        flagged = s.execute(
            select(func.count())
            .select_from(ChunkRow)
            .where(col(ChunkRow.collection_id) == collection_id, col(ChunkRow.instruction_like))
        ).scalar_one()
    return dict(sorted(counts.items())), int(flagged)


def latency_series(
    store: Store, collection: str, *, hours: int = 24, actions: Sequence[str] = ("search", "answer")
) -> dict[str, Any]:
    """p50 / p95 latency per hour and action from the audit log (successful requests)."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    with store.session() as s:
        rows = s.execute(
            select(col(AuditRow.at), col(AuditRow.action), col(AuditRow.latency_ms)).where(
                col(AuditRow.collection) == collection,
                col(AuditRow.action).in_(list(actions)),
                col(AuditRow.status) == 200,
                col(AuditRow.at) >= since,
            )
        ).all()
    buckets: dict[tuple[str, str], list[float]] = {}
    overall: dict[str, list[float]] = {a: [] for a in actions}
    for at, action, ms in rows:
        hour = _aware(at).replace(minute=0, second=0, microsecond=0).isoformat()
        buckets.setdefault((action, hour), []).append(float(ms))
        overall[action].append(float(ms))
    series = {
        a: [
            {"hour": h, "requests": len(v), "p50_ms": round(percentile(v, 50), 2),
             "p95_ms": round(percentile(v, 95), 2)}
            for (act, h), v in sorted(buckets.items(), key=lambda kv: kv[0][1])
            if act == a
        ]
        for a in actions
    }  # fmt: skip
    totals = {
        a: {"requests": len(v), "p50_ms": round(percentile(v, 50), 2),
            "p95_ms": round(percentile(v, 95), 2)}
        for a, v in overall.items()
    }  # fmt: skip
    return {"hours": hours, "series": series, "totals": totals}


def ann_recall(
    store: Store, dense: Any, collection_id: int, dim: int, *, sample: int = 50, k: int = 10
) -> dict[str, Any]:
    """Recall@k of the dense index against exact search over the SQL vectors, for ``sample``
    stored chunk vectors used as queries (seeded, so the figure is stable between calls)."""
    ids = store.live_chunk_ids(collection_id)
    if len(ids) == 0:
        return {"recall_at_10": None, "sample": 0, "chunks": 0}
    try:
        all_ids, vectors, _ = store.chunk_payloads([int(i) for i in ids], dim)
    except ConflictError:  # re-embedded between reading the collection and its vectors
        return {"recall_at_10": None, "sample": 0, "chunks": len(ids), "changing": True}
    rng = random.Random(collection_id)
    rows = sorted(rng.sample(range(len(all_ids)), min(sample, len(all_ids))))
    queries = vectors[rows]
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    found = dense.search(queries, k)
    hits = 0
    for i in range(len(rows)):
        truth = {int(all_ids[j]) for j in exact[i]}
        got = {cid for cid, _ in found.hits(i)}
        hits += len(truth & got)
    total = len(rows) * min(k, len(all_ids))
    return {"recall_at_10": round(hits / total, 4), "sample": len(rows), "chunks": len(all_ids)}
