"""The FastAPI application (``ragstack serve``); routes stay thin over the service layer.

* Auth: ``Authorization: Bearer rsk_...`` (or ``X-API-Key``) on every route but ``/healthz``
  and ``/readyz``; the key's principals, groups and tenant are what every ACL filter uses (a
  key without a tenant reads tenant-less documents only, unless it is an admin). Failed
  authentications are limited per client address (429 before the key is even looked at).
  The admin page and the chat page (``/ui``) run on signed, expiring sessions
  (``ragstack.api.sessions``).
* Proxies: ``X-Forwarded-For`` / ``-Proto`` are believed only from the addresses in
  ``RAGSTACK_API_TRUSTED_PROXIES`` (uvicorn's own proxy-header handling, applied here so it
  holds however the app is served; ``ragstack serve`` turns uvicorn's default off).
* Answers: a bounded number generate at once per generator (503 ``busy`` past a short queue);
  a request that times out or whose client leaves stops its generation.
* Errors: one JSON shape, ``{"error": {"code", "message", "status"}}``; ``RagstackError``
  subclasses map to HTTP statuses in ``ragstack.api.errors.STATUS`` (the only place),
  anything else is a 500 whose message is not shown.
* Limits: a token bucket per key (429 with ``Retry-After``), a request body limit (413).
  CORS is off unless origins are configured.
* Audit: every search, answer, collection and key change is written to SQL with the key,
  principals, route, returned chunk ids, status, latency and request id; query texts
  PII-redacted.
* Front doors: the REST routes, the OpenAI-compatible ones (``ragstack.api.openai``) and MCP
  over streamable HTTP at ``/mcp`` (``ragstack.mcp``), all on the same service calls.
* Logs: one access line per request (``ragstack.access``) with its request id, which the
  response returns as ``X-Request-ID``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragstack.access import Audit, Keys
from ragstack.api import admin, chat, openai, routes
from ragstack.api.deps import ApiState
from ragstack.api.errors import BodyLimit, RateLimiter, Timeout, install_error_handlers
from ragstack.api.metrics import Metrics
from ragstack.api.models import ERRORS
from ragstack.api.sessions import Sessions
from ragstack.api.slots import Generations
from ragstack.jobs import Jobs
from ragstack.logs import request_id_from, request_scope
from ragstack.publicids import PublicIds
from ragstack.service import Ragstack

access = logging.getLogger("ragstack.access")


class Observe:
    """ASGI middleware: the request id, the access log line, and request count and latency per
    route template and status (a plain ASGI wrapper: Starlette's ``BaseHTTPMiddleware`` costs
    a task and a stream per request).

    The request id is the caller's ``X-Request-ID`` when it is well-formed (short, no spaces
    or quotes), else a new one; it is returned as ``X-Request-ID``, set on every log record of
    the request, and stored in its audit row (``scope["state"]["request_id"]``). The access
    line names the route template, never the raw path or query string (which carry names a
    caller typed), nor any header."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = dict(scope.get("headers") or []).get(b"x-request-id")
        request_id = request_id_from(given.decode("latin-1") if given else None)
        scope.setdefault("state", {})["request_id"] = request_id

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        with request_scope(request_id):
            try:
                await self.app(scope, receive, sending)
            finally:
                path = getattr(scope.get("route"), "path", "unmatched")
                seconds = time.perf_counter() - started
                self.metrics.observe(scope["method"], path, status, seconds)
                access.info(
                    "%s %s %d %.1f ms", scope["method"], path, status, seconds * 1000,
                    extra={"method": scope["method"], "route": path, "status": status,
                           "latency_ms": round(seconds * 1000, 3), "request_id": request_id},
                )  # fmt: skip


def create_app(svc: Ragstack) -> FastAPI:
    settings = svc.settings
    generations = Generations(
        {"extractive": settings.api_answers_extractive, "local": settings.api_answers_local,
         "remote": settings.api_answers_remote},
        settings.api_answer_queue,
    )  # fmt: skip
    api = ApiState(
        svc,
        Keys(svc.store),
        Audit(svc.store, buffered=True),
        RateLimiter(settings.api_rate_per_s, settings.api_burst),
        Metrics(svc, generations),
        Jobs(svc),
        PublicIds(svc.store.secret("ids")),
        auth_failures=RateLimiter(
            settings.api_auth_failures_per_s,
            settings.api_auth_failures_burst,
            what="failed authentications",
        ),
        generations=generations,
        admin_sessions=Sessions(
            svc.store.secret("sessions"),
            audience="admin",
            cookie="ragstack_admin",
            path="/admin",
            role="admin",
            lifetime_s=settings.api_session_ttl_s,
        ),
        ui_sessions=Sessions(
            svc.store.secret("sessions"),
            audience="ui",
            cookie="ragstack_ui",
            path="/ui",
            role="reader",
            lifetime_s=settings.api_session_ttl_s,
        ),
    )

    from ragstack.mcp.server import McpHttp  # here: ragstack.mcp imports ragstack.api.public

    mcp = McpHttp(api)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with mcp.running():
            yield
        api.jobs.shutdown()  # let a running ingest finish its batch and commit
        api.audit.close()  # and write the audit rows still queued

    app = FastAPI(
        lifespan=lifespan,
        title="ragstack",
        version="0.1.0",
        description="ACL-filtered hybrid search and cited answers. Every route but /healthz "
        "and /readyz needs an API key: `Authorization: Bearer rsk_...`.",
        responses=ERRORS,
    )
    app.state.api = api
    install_error_handlers(app)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(
        BodyLimit, limit=settings.api_max_body_bytes, upload_limit=settings.api_max_upload_bytes
    )

    app.add_middleware(Timeout, seconds=settings.api_timeout_s)
    app.add_middleware(Observe, metrics=api.metrics)
    if settings.api_trusted_proxies:  # outermost: everything inside sees the real client
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.api_trusted_proxies))

    routers = (routes.health, routes.query, routes.collections, routes.admin, openai.router)
    for router in (*routers, admin.api, admin.page, chat.page):
        app.include_router(router)
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))  # MCP (a key)
    return app
