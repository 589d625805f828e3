"""A live re-embed's SQL state: the shadow vector set (``chunk_vectors``) and the run
(``reembed_runs``).

The shadow set holds each chunk's vector under the model a collection is moving to, keyed by
``(chunk id, model id)`` and reused by ``(model id, text hash)``; a chunk that goes takes its
shadow vector with it (a foreign key). Progress is what SQL holds: a run resumes by embedding
the chunks that have no shadow vector yet. ``switch`` is the one transaction that moves the
collection: it copies the shadow vectors into ``chunks.embedding``, re-pins the embedder,
names the new dense index, bumps both generations and drops the collection's answer cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, delete, func, insert, select, update

from ragstack.errors import ConflictError, NotFoundError
from ragstack.store.models import (
    CacheEntryRow,
    ChunkRow,
    ChunkVectorRow,
    CollectionRow,
    ReembedRow,
    utcnow,
)
from ragstack.store.store import Store

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
# (connection, chunk ids, their vectors): the shadow dense index's writes when it lives in the
# database (committed with the shadow rows)
ShadowIndexWriter = Callable[[Connection, I64, F32], None]

ACTIVE = ("running", "switched")
_V = ChunkVectorRow.__table__  # type: ignore[attr-defined]
_C = ChunkRow.__table__  # type: ignore[attr-defined]
_R = ReembedRow.__table__  # type: ignore[attr-defined]
_COLL = CollectionRow.__table__  # type: ignore[attr-defined]
_CACHE = CacheEntryRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ReembedRun:
    id: int
    collection_id: int
    from_model: str
    model_id: str
    model_path: str | None
    dim: int
    dense_name: str
    from_dense: str
    status: str
    total: int
    done: int
    embedded: int
    reused: int
    message: str
    report: dict[str, Any]
    owner: str
    heartbeat_at: datetime | None
    started_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("heartbeat_at", "started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


class ChunkText(NamedTuple):
    """A chunk as a re-embed reads it."""

    id: int
    text_hash: str
    section: str
    text: str
    token_count: int  # as it was counted when it was chunked (the old model's, special included)
    document_id: int


def _run(row: Any) -> ReembedRun:
    return ReembedRun(
        id=row.id, collection_id=row.collection_id, from_model=row.from_model,
        model_id=row.model_id, model_path=row.model_path, dim=row.dim,
        dense_name=row.dense_name, from_dense=row.from_dense, status=row.status,
        total=row.total, done=row.done, embedded=row.embedded, reused=row.reused,
        message=row.message, report=json.loads(row.report or "{}"), owner=row.owner,
        heartbeat_at=row.heartbeat_at, started_at=row.started_at, finished_at=row.finished_at,
    )  # fmt: skip


def insert_shadow(
    conn: Connection,
    collection_id: int,
    model_id: str,
    ids: Sequence[int],
    hashes: Sequence[str],
    vectors: Sequence[F32] | F32,
) -> int:
    """Shadow vectors of chunks, inside the caller's transaction."""
    rows = [
        {
            "chunk_id": int(i),
            "model_id": model_id,
            "collection_id": collection_id,
            "text_hash": h,
            "embedding": np.ascontiguousarray(v, dtype=np.float32).tobytes(),
        }
        for i, h, v in zip(ids, hashes, vectors, strict=True)
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(insert(_V), rows[start : start + 1000])
    return len(rows)


class ShadowStore:
    """Reads and writes of a live re-embed's rows (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # -- runs ---------------------------------------------------------------------------------

    def get(self, run_id: int) -> ReembedRun:
        with self.engine.connect() as conn:
            row = conn.execute(select(_R).where(_R.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no re-embed run {run_id}")
        return _run(row)

    def latest(self, collection_id: int) -> ReembedRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_R).where(_R.c.collection_id == collection_id).order_by(_R.c.id.desc())
            ).first()
        return _run(row) if row is not None else None

    def active(self, collection_id: int) -> ReembedRun | None:
        """The collection's run still running or switched but not cleaned up, if any."""
        found = self.latest(collection_id)
        return found if found is not None and found.status in ACTIVE else None

    def begin(
        self,
        *,
        collection_id: int,
        from_model: str,
        from_dense: str,
        model_id: str,
        model_path: str | None,
        dim: int,
        owner: str,
    ) -> ReembedRun:
        """A new run (its shadow dense index named after it), or the active one to the same
        model, taken over by ``owner`` (the caller holds the re-embed lock: its last owner
        is gone). An active run to another model is a ``ConflictError``."""
        found = self.active(collection_id)
        if found is not None:
            if found.model_id != model_id and found.status == "running":
                raise ConflictError(
                    f"this collection is being moved to {found.model_id}: resume that, or "
                    "cancel it first (ragstack reembed --cancel)"
                )
            self.progress(found.id, owner=owner, message="")
            return self.get(found.id)
        with self.engine.begin() as conn:
            run_id = conn.execute(
                insert(_R)
                .values(collection_id=collection_id, from_model=from_model,
                        model_id=model_id, model_path=model_path, dim=dim,
                        dense_name="", from_dense=from_dense, status="running", total=0,
                        done=0, embedded=0, reused=0, message="", report="{}", owner=owner,
                        heartbeat_at=utcnow(), started_at=utcnow())
                .returning(_R.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(update(_R).where(_R.c.id == run_id).values(dense_name=f"dense-{run_id}"))
        return self.get(int(run_id))

    def progress(self, run_id: int, **values: Any) -> None:
        """Update a run's row (and its heartbeat)."""
        if "report" in values:
            values["report"] = json.dumps(values["report"], sort_keys=True)
        with self.engine.begin() as conn:
            conn.execute(update(_R).where(_R.c.id == run_id).values(heartbeat_at=utcnow(),
                                                                  **values))  # fmt: skip

    def finish(self, run_id: int, status: str, message: str = "", **values: Any) -> None:
        self.progress(run_id, status=status, message=message, finished_at=utcnow(), **values)

    # -- shadow vectors -----------------------------------------------------------------------

    def missing(
        self, collection_id: int, model_id: str, *, after: int, limit: int
    ) -> list[ChunkText]:
        """Up to ``limit`` chunks past id ``after`` without a shadow vector under
        ``model_id``, in id order."""
        has = select(_V.c.chunk_id).where(_V.c.chunk_id == _C.c.id, _V.c.model_id == model_id)
        return self._chunks(collection_id, ~has.exists(), after=after, limit=limit)

    def chunks(self, collection_id: int, *, after: int, limit: int) -> list[ChunkText]:
        """Up to ``limit`` chunks past id ``after``, in id order."""
        return self._chunks(collection_id, None, after=after, limit=limit)

    def _chunks(self, collection_id: int, where: Any, *, after: int, limit: int) -> list[ChunkText]:
        q = (
            select(_C.c.id, _C.c.text_hash, _C.c.section, _C.c.text, _C.c.token_count,
                   _C.c.document_id)
            .where(_C.c.collection_id == collection_id, _C.c.id > after)
            .order_by(_C.c.id)
            .limit(limit)
        )  # fmt: skip
        if where is not None:
            q = q.where(where)
        with self.engine.connect() as conn:
            return [
                ChunkText(int(a), str(b), str(c), str(d), int(e), int(f))
                for a, b, c, d, e, f in conn.execute(q)
            ]

    def counts(self, collection_id: int, model_id: str) -> tuple[int, int]:
        """``(chunks, chunks with a shadow vector under model_id)``."""
        with self.engine.connect() as conn:
            chunks = conn.execute(
                select(func.count()).select_from(_C).where(_C.c.collection_id == collection_id)
            ).scalar_one()
            done = conn.execute(
                select(func.count())
                .select_from(_V)
                .where(_V.c.collection_id == collection_id, _V.c.model_id == model_id)
            ).scalar_one()
        return int(chunks), int(done)

    def reusable(
        self, collection_id: int, model_id: str, hashes: Sequence[str]
    ) -> dict[str, bytes]:
        """Shadow vectors under ``model_id`` of the collection's texts hashing to ``hashes``."""
        wanted = sorted(set(hashes))
        out: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(
                    select(_V.c.text_hash, _V.c.embedding).where(
                        _V.c.collection_id == collection_id,
                        _V.c.model_id == model_id,
                        _V.c.text_hash.in_(wanted[i : i + 500]),
                    )
                )
                out.update({str(h): bytes(e) for h, e in rows})
        return out

    def write(
        self,
        run_id: int,
        collection_id: int,
        model_id: str,
        ids: I64,
        hashes: Sequence[str],
        vectors: F32,
        *,
        embedded: int,
        reused: int,
        index: ShadowIndexWriter | None = None,
    ) -> I64:
        """Shadow vectors of chunks, with the run's progress (and the database shadow index's
        rows), in one transaction; chunks deleted or given a vector meanwhile are skipped.
        Returns the ids written."""
        with self.engine.begin() as conn:
            still = set(
                conn.execute(
                    select(_C.c.id).where(
                        _C.c.id.in_(ids.tolist()),
                        ~select(_V.c.chunk_id)
                        .where(_V.c.chunk_id == _C.c.id, _V.c.model_id == model_id)
                        .exists(),
                    )
                ).scalars()
            )
            keep = np.array([int(i) in still for i in ids], dtype=bool)
            kept_ids: I64 = np.asarray(ids[keep], dtype=np.int64)
            insert_shadow(
                conn, collection_id, model_id, kept_ids.tolist(),
                [h for h, k in zip(hashes, keep, strict=True) if k], vectors[keep],
            )  # fmt: skip
            if index is not None and kept_ids.size:
                index(conn, kept_ids, vectors[keep])
            conn.execute(
                update(_R)
                .where(_R.c.id == run_id)
                .values(done=_R.c.done + int(kept_ids.size), embedded=_R.c.embedded + embedded,
                        reused=_R.c.reused + reused, heartbeat_at=utcnow())
            )  # fmt: skip
        return kept_ids

    def ids(self, collection_id: int, model_id: str) -> I64:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_V.c.chunk_id)
                .where(_V.c.collection_id == collection_id, _V.c.model_id == model_id)
                .order_by(_V.c.chunk_id)
            ).scalars()
            return np.fromiter(rows, dtype=np.int64)

    def payloads(self, model_id: str, ids: Sequence[int], dim: int) -> tuple[I64, F32]:
        """``(ids, shadow vectors)`` of chunks, in id order."""
        out_ids: list[int] = []
        vecs: list[bytes] = []
        id_list = sorted(int(i) for i in ids)
        with self.engine.connect() as conn:
            for i in range(0, len(id_list), 1000):
                rows = conn.execute(
                    select(_V.c.chunk_id, _V.c.embedding)
                    .where(_V.c.model_id == model_id, _V.c.chunk_id.in_(id_list[i : i + 1000]))
                    .order_by(_V.c.chunk_id)
                )
                for cid, emb in rows:
                    out_ids.append(int(cid))
                    vecs.append(bytes(emb))
        matrix = (
            np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(-1, dim)
            if vecs
            else np.empty((0, dim), dtype=np.float32)
        )
        return np.array(out_ids, dtype=np.int64), matrix

    def drop_vectors(self, collection_id: int, model_id: str) -> int:
        """Delete the collection's shadow vectors under ``model_id`` (in batches)."""
        gone = 0
        while True:
            with self.engine.begin() as conn:
                batch = (
                    conn.execute(
                        select(_V.c.chunk_id)
                        .where(_V.c.collection_id == collection_id, _V.c.model_id == model_id)
                        .limit(5000)
                    )
                    .scalars()
                    .all()
                )
                if not batch:
                    return gone
                conn.execute(delete(_V).where(_V.c.model_id == model_id,
                                              _V.c.chunk_id.in_(batch)))  # fmt: skip
                gone += len(batch)

    # -- the switch ---------------------------------------------------------------------------

    def switch(self, run: ReembedRun, report: dict[str, Any]) -> None:
        """The one transaction that moves the collection to ``run``'s model (see the module
        docstring). A chunk without a shadow vector (the caller holds the writer lock, so none
        should be) is a ``ConflictError`` and changes nothing."""
        cid, model = run.collection_id, run.model_id
        with self.engine.begin() as conn:
            has = select(_V.c.chunk_id).where(_V.c.chunk_id == _C.c.id, _V.c.model_id == model)
            lacking = conn.execute(
                select(func.count()).select_from(_C).where(_C.c.collection_id == cid, ~has.exists())
            ).scalar_one()
            if lacking:
                raise ConflictError(f"{lacking} chunks have no vector under {model} yet")
            vector = (
                select(_V.c.embedding)
                .where(_V.c.chunk_id == _C.c.id, _V.c.model_id == model)
                .scalar_subquery()
            )
            conn.execute(update(_C).where(_C.c.collection_id == cid).values(embedding=vector))
            moved = conn.execute(
                update(_COLL)
                .where(_COLL.c.id == cid, _COLL.c.embedder_id == run.from_model)
                .values(embedder_id=model, dim=run.dim, dense_name=run.dense_name,
                        generation=_COLL.c.generation + 1,
                        index_generation=_COLL.c.index_generation + 1, updated_at=utcnow())
            ).rowcount  # fmt: skip
            if moved != 1:
                raise ConflictError("the collection's embedder changed under this re-embed")
            conn.execute(delete(_CACHE).where(_CACHE.c.collection_id == cid))
            conn.execute(
                update(_R)
                .where(_R.c.id == run.id)
                .values(status="switched", report=json.dumps(report, sort_keys=True),
                        heartbeat_at=utcnow())
            )  # fmt: skip
