"""What every route depends on: the app's state, the calling key, its role, the audit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from ragstack.access import Audit, KeyInfo, Keys, Role
from ragstack.api.errors import RateLimiter, status_of
from ragstack.api.metrics import Metrics
from ragstack.errors import UnauthenticatedError
from ragstack.jobs import Jobs
from ragstack.publicids import PublicIds
from ragstack.service import Ragstack


@dataclass
class ApiState:
    svc: Ragstack
    keys: Keys
    audit: Audit
    limiter: RateLimiter
    metrics: Metrics
    jobs: Jobs
    ids: PublicIds  # the public names of document and chunk ids


@dataclass
class Caller:
    key: KeyInfo
    state: ApiState
    started: float = field(default_factory=time.perf_counter)

    @property
    def principals(self) -> list[str]:
        return list(self.key.principals)

    @property
    def tenant(self) -> str | None:
        """The tenant scope every service call gets: the key's tenant; for a key without
        one, ``""`` (tenant-less documents only) unless it is an admin's (``None``: all)."""
        if self.key.tenant is not None:
            return self.key.tenant
        return None if self.key.allows("admin") else ""

    def audit(
        self,
        route: str,
        action: str,
        status: int,
        *,
        collection: str | None = None,
        query: str | None = None,
        chunk_ids: list[int] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """One audit row for this request; ``query`` is stored PII-redacted."""
        svc = self.state.svc
        self.state.audit.record(
            route=route,
            action=action,
            status=status,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            key_id=self.key.key_id,
            principals=self.principals,
            collection=collection,
            query=svc.redacted(collection, query) if collection and query else None,
            chunk_ids=chunk_ids or [],
            detail=detail,
        )

    def audit_failure(self, route: str, action: str, exc: BaseException, **kw: Any) -> None:
        self.audit(route, action, status_of(exc), **kw)


def state(request: Request) -> ApiState:
    found: ApiState = request.app.state.api
    return found


def caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Caller:
    presented = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    if not presented:
        raise UnauthenticatedError("an API key is required: Authorization: Bearer rsk_...")
    api = state(request)
    key = api.keys.authenticate(presented)
    api.limiter.take(key.key_id)
    return Caller(key, api)


def require(needed: Role) -> Callable[[Caller], Caller]:
    def check(who: Annotated[Caller, Depends(caller)]) -> Caller:
        who.key.require(needed)
        if needed == "admin":  # admin figures count every request recorded before this one
            who.state.audit.flush()
        return who

    return check


Reader = Annotated[Caller, Depends(require("reader"))]
Writer = Annotated[Caller, Depends(require("writer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
State = Annotated[ApiState, Depends(state)]
