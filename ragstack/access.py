"""API keys and the audit log.

A key is ``rsk_<key id>_<secret>``: the key id is public (it names the key in lists, logs and
the audit trail), the secret is 32 random bytes shown once when the key is created; SQL keeps
only its SHA-256 (a high-entropy secret needs no slow hash). A key carries a principal, its
groups and a role; the principals are what every ACL filter uses for requests made with it.

Roles nest: ``reader`` searches and reads what its principals may read; ``writer`` also creates
collections, ingests and deletes documents; ``admin`` also manages keys, reads the audit log
and the admin page, and sees operational figures across collections.

A key with a tenant is confined to it: its reads see that tenant's documents and tenant-less
ones, and as an admin it manages only its tenant's keys, audit rows and collections. A key
without a tenant reads only tenant-less documents, unless it is an admin (an operator: it sees
every tenant).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlmodel import col

from ragstack.domain import check_principal
from ragstack.errors import (
    InputError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from ragstack.store import Store
from ragstack.store.models import ApiKeyRow, AuditRow, utcnow

log = logging.getLogger("ragstack.audit")

Role = Literal["reader", "writer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "writer", "admin")
PREFIX = "rsk_"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    principal: str
    groups: tuple[str, ...]
    role: Role
    tenant: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def principals(self) -> tuple[str, ...]:
        return (self.principal, *self.groups)

    def allows(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: Role) -> None:
        if not self.allows(role):
            raise PermissionDeniedError(f"this needs a {role} key; this key is a {self.role}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "principal": self.principal,
            "groups": list(self.groups),
            "role": self.role,
            "tenant": self.tenant,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: Any) -> KeyInfo:
    """From an ORM ``ApiKeyRow`` or a Core row of its table."""
    return KeyInfo(
        row.key_id,
        row.name,
        row.principal,
        tuple(json.loads(row.groups)),
        row.role,
        row.tenant,
        row.created_at.replace(tzinfo=UTC) if row.created_at.tzinfo is None else row.created_at,
        row.revoked_at,
    )


class Keys:
    """Create, authenticate, list and revoke API keys (SQL is the only state)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        principal: str,
        *,
        groups: Sequence[str] = (),
        role: str = "reader",
        name: str = "",
        tenant: str | None = None,
    ) -> tuple[KeyInfo, str]:
        """``(key, the full secret key string)``; the string is not stored and not shown again."""
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if tenant is not None and (not tenant.strip() or tenant != tenant.strip()):
            raise InputError("a tenant is a non-blank name without surrounding spaces")
        check_principal(principal)
        if not principal.startswith("user:"):
            raise InputError("a key's principal must be a user:NAME")
        for g in groups:
            check_principal(g)
            if not g.startswith("group:"):
                raise InputError(f"groups must be group:NAME principals, not {g!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiKeyRow(
            key_id=key_id,
            secret_sha256=_digest(secret),
            name=name[:200],
            principal=principal,
            groups=json.dumps(sorted(set(groups))),
            role=role,
            tenant=tenant,
        )
        with self.store.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return _info(row), f"{PREFIX}{key_id}_{secret}"

    def authenticate(self, presented: str) -> KeyInfo:
        """The live key ``presented`` is, or ``UnauthenticatedError`` (one message for every
        failure, so a caller learns nothing about which keys exist)."""
        denied = UnauthenticatedError("invalid or revoked API key")
        if not presented.startswith(PREFIX) or presented.count("_") < 2:
            raise denied
        key_id, _, secret = presented[len(PREFIX) :].partition("_")
        row = self._row(key_id)
        expected = row.secret_sha256 if row is not None else _digest("\0")
        if not hmac.compare_digest(expected, _digest(secret)) or row is None:
            raise denied
        if row.revoked_at is not None:
            raise denied
        return _info(row)

    def live(self, key_id: str) -> KeyInfo:
        """The key ``key_id`` if it exists and is not revoked (a session names its key by id and
        re-checks it on every request), else ``UnauthenticatedError``."""
        row = self._row(key_id)
        if row is None or row.revoked_at is not None:
            raise UnauthenticatedError("invalid or revoked API key")
        return _info(row)

    def _row(self, key_id: str) -> Any:
        """The key's row as it is now (read on every request: a revocation is in force for
        the next one), by Core on a read connection: no ORM object, no transaction."""
        table = ApiKeyRow.__table__  # type: ignore[attr-defined]
        with self.store.read() as conn:
            return conn.execute(select(table).where(table.c.key_id == key_id)).first()

    def list(self, *, tenant: str | None = None) -> list[KeyInfo]:
        """Every key, or (``tenant``) only that tenant's."""
        q = select(ApiKeyRow).order_by(col(ApiKeyRow.id))
        if tenant is not None:
            q = q.where(col(ApiKeyRow.tenant) == tenant)
        with self.store.session() as s:
            rows = s.execute(q).scalars().all()
        return [_info(r) for r in rows]

    def revoke(self, key_id: str, *, tenant: str | None = None) -> KeyInfo:
        """Revokes the key (with ``tenant``: only if it is that tenant's; another tenant's key
        is as missing as one that does not exist)."""
        where = [col(ApiKeyRow.key_id) == key_id]
        if tenant is not None:
            where.append(col(ApiKeyRow.tenant) == tenant)
        with self.store.session() as s:
            s.execute(
                update(ApiKeyRow)
                .where(*where, col(ApiKeyRow.revoked_at).is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            s.commit()
            row = s.execute(select(ApiKeyRow).where(*where)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}")
        return _info(row)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    key_id: str | None
    tenant: str | None
    principals: tuple[str, ...]
    route: str
    action: str
    collection: str | None
    query: str | None
    chunk_ids: tuple[int, ...]
    status: int
    latency_ms: float
    detail: dict[str, Any]
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "key_id": self.key_id,
            "tenant": self.tenant,
            "principals": list(self.principals),
            "route": self.route,
            "action": self.action,
            "collection": self.collection,
            "query": self.query,
            "chunk_ids": list(self.chunk_ids),
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "detail": self.detail,
            "request_id": self.request_id,
        }


def _valid_text(value: Any) -> Any:
    """``value`` with every string made valid UTF-8: a request may carry lone surrogates (a
    path parameter, say) that no JSON response could encode later."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(v) for v in value]
    return value


_LINGER_S = 0.02  # the audit writer waits this long for more rows before it commits


class Audit:
    """The append-only audit log in SQL. Query texts arrive already redacted; every string is
    stored as valid UTF-8.

    ``buffered`` (the API server): ``record`` queues the row and a writer thread commits what
    has queued, many rows per transaction (what arrives within ``_LINGER_S`` of the first),
    off the request path. Every read here (``entries``) and ``flush`` wait for the rows
    recorded before them, so what a caller did is what it reads back; ``close`` writes the
    rest. A process killed outright loses at most the rows of the one commit in flight and
    of the ``_LINGER_S`` before it."""

    def __init__(self, store: Store, *, buffered: bool = False) -> None:
        self.store = store
        self.buffered = buffered
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._start = threading.Lock()

    def record(
        self,
        *,
        route: str,
        action: str,
        status: int,
        latency_ms: float,
        key_id: str | None = None,
        tenant: str | None = None,
        principals: Sequence[str] = (),
        collection: str | None = None,
        query: str | None = None,
        chunk_ids: Sequence[int] = (),
        detail: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        """``tenant`` is the key's: a tenant's admin reads its tenant's rows only."""
        row = {
            "at": utcnow(),
            "key_id": key_id,
            "tenant": _valid_text(tenant),
            "principals": json.dumps(_valid_text(list(principals))),
            "route": _valid_text(route),
            "action": action,
            "collection": _valid_text(collection),
            "query": _valid_text(query),
            "chunk_ids": json.dumps([int(c) for c in chunk_ids]),
            "status": status,
            "latency_ms": latency_ms,
            "detail": json.dumps(_valid_text(detail or {}), sort_keys=True, default=str),
            "request_id": request_id,
        }
        if not self.buffered:
            self._write([row])
            return
        self._ensure_writer()
        self._queue.put(row)

    def flush(self) -> None:
        """Return once every row recorded before this call is committed."""
        if self._writer is not None:
            self._queue.join()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None

    def _ensure_writer(self) -> None:
        with self._start:
            if self._writer is None:
                self._writer = threading.Thread(target=self._drain, name="audit", daemon=True)
                self._writer.start()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            # what the next few milliseconds bring goes in the same commit: a busy server
            # would otherwise commit (BEGIN, INSERT, COMMIT: three round trips on PostgreSQL)
            # for nearly every request
            until = time.monotonic() + _LINGER_S
            while len(batch) < 1000 and batch[-1] is not None:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            rows = [r for r in batch if r is not None]
            try:
                if rows:
                    self._write(rows)
            except Exception as exc:  # the writer must outlive one bad commit
                log.error("audit: %d rows not written: %s", len(rows), type(exc).__name__)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.store.engine.begin() as conn:  # Core: no ORM unit of work per batch
            conn.execute(insert(AuditRow.__table__), rows)  # type: ignore[attr-defined]

    def entries(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        action: str | None = None,
        tenant: str | None = None,
        request_id: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; page with ``before_id`` (the last id of the previous page); with
        ``tenant``, only the rows of that tenant's keys; ``request_id`` finds the rows of one
        request (the id in its log lines)."""
        self.flush()
        q = select(AuditRow).order_by(col(AuditRow.id).desc()).limit(max(1, min(limit, 10_000)))
        if before_id is not None:
            q = q.where(col(AuditRow.id) < before_id)
        if action:
            q = q.where(col(AuditRow.action) == action)
        if tenant is not None:
            q = q.where(col(AuditRow.tenant) == tenant)
        if request_id:
            q = q.where(col(AuditRow.request_id) == request_id)
        with self.store.session() as s:
            rows = s.execute(q).scalars().all()
        return [
            AuditEntry(
                int(r.id or 0),
                r.at,
                r.key_id,
                r.tenant,
                tuple(json.loads(r.principals)),
                r.route,
                r.action,
                r.collection,
                r.query,
                tuple(json.loads(r.chunk_ids)),
                r.status,
                r.latency_ms,
                json.loads(r.detail),
                r.request_id,
            )
            for r in rows
        ]
