"""What every route depends on: the app's state, the calling key (its role, its tenant, the
failed-authentication limit per client address), the audit."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from ragstack.access import Audit, KeyInfo, Keys, Role
from ragstack.api.errors import RateLimiter, status_of
from ragstack.api.metrics import Metrics
from ragstack.api.sessions import Session, Sessions
from ragstack.api.slots import Generations
from ragstack.errors import UnauthenticatedError
from ragstack.jobs import Jobs
from ragstack.publicids import PublicIds
from ragstack.service import Ragstack


@dataclass
class ApiState:
    svc: Ragstack
    keys: Keys
    audit: Audit
    limiter: RateLimiter  # requests per key
    metrics: Metrics
    jobs: Jobs
    ids: PublicIds  # the public names of document and chunk ids
    auth_failures: RateLimiter  # failed authentications per client address
    generations: Generations  # concurrent answer generations per generator
    admin_sessions: Sessions  # the admin page's
    ui_sessions: Sessions  # the chat page's (any live key)


@dataclass
class Caller:
    key: KeyInfo
    state: ApiState
    started: float = field(default_factory=time.perf_counter)
    session: Session | None = None  # when it came through a page's session cookie
    request_id: str | None = None  # the id in the request's log lines and X-Request-ID

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

    def administers(self, tenant: str | None) -> bool:
        """Whether this key administers what belongs to ``tenant`` (a collection, a key, a job,
        an audit row): an admin without a tenant administers everything, one with a tenant
        only that tenant's."""
        return self.key.allows("admin") and self.key.tenant in (None, tenant)

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
            tenant=self.key.tenant,
            principals=self.principals,
            collection=collection,
            query=svc.redacted(collection, query) if collection and query else None,
            chunk_ids=chunk_ids or [],
            detail=detail,
            request_id=self.request_id,
        )

    def audit_failure(self, route: str, action: str, exc: BaseException, **kw: Any) -> None:
        self.audit(route, action, status_of(exc), **kw)


def state(request: Request) -> ApiState:
    found: ApiState = request.app.state.api
    return found


def client_address(request: Request) -> str:
    """Who is calling, for per-address limits: the peer's IP (the client's, from a trusted
    proxy's ``X-Forwarded-For``: ``RAGSTACK_API_TRUSTED_PROXIES``), an IPv6 one as its /64 (one
    host usually holds a whole /64)."""
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def authenticate(api: ApiState, request: Request, presented: str) -> KeyInfo:
    """The live key ``presented`` is. An address with too many recent failures is refused
    (429) before the key is looked at; a failure spends from its allowance, a success not."""
    address = client_address(request)
    api.auth_failures.check(address)
    try:
        return api.keys.authenticate(presented)
    except UnauthenticatedError:
        api.auth_failures.spend(address)
        raise


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
    key = authenticate(api, request, presented)
    api.limiter.take(key.key_id)
    return Caller(key, api, request_id=getattr(request.state, "request_id", None))


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
