"""Domain errors to HTTP (the one place the mapping lives), the error body, and the request
limits that answer in the same shape: a token bucket per key and a request body limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragstack.errors import (
    ConfigError,
    ConflictError,
    DocumentTooLargeError,
    IndexIntegrityError,
    InputError,
    NotFoundError,
    ParseError,
    PermissionDeniedError,
    RagstackError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    UnsupportedDocumentError,
)

log = logging.getLogger("ragstack.api")

# Domain errors -> HTTP, most specific first.
STATUS: tuple[tuple[type[RagstackError], int], ...] = (
    (UnauthenticatedError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (DocumentTooLargeError, 413),
    (UnsupportedDocumentError, 415),
    (ParseError, 422),
    (InputError, 400),
    (RateLimitedError, 429),
    (UnavailableError, 503),
    (ConfigError, 500),
    (IndexIntegrityError, 500),
)


def status_of(exc: BaseException) -> int:
    if not isinstance(exc, RagstackError):
        return 500
    return next((s for kind, s in STATUS if isinstance(exc, kind)), 500)


def error_body(code: str, message: str, status: int) -> dict[str, dict[str, object]]:
    return {"error": {"code": code, "message": message, "status": status}}


def error_response(exc: RagstackError) -> JSONResponse:
    status = status_of(exc)
    headers = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.499)))
    if isinstance(exc, UnauthenticatedError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(exc.code, str(exc), status), status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagstackError)
    async def domain_error(_: Request, exc: RagstackError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        return JSONResponse(error_body("invalid_request", where, 422), 422)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal", "internal error", 500), 500)


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(f"rate limit of {self.rate:g} requests/s exceeded", wait)
            self._buckets[key] = (tokens - 1.0, now)


class BodyLimit:
    """ASGI middleware: a 413 in the error shape for bodies over ``limit`` bytes (document
    uploads: ``upload_limit``), declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and str(scope["path"]).endswith("/documents")
        limit = self.upload_limit if upload else self.limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise DocumentTooLargeError(f"request body over {limit:,} bytes")
            return message

        await self.app(scope, counted, send)

    async def _too_large(self, scope: Scope, send: Send, limit: int) -> None:
        exc = DocumentTooLargeError(f"request body over {limit:,} bytes")
        response = error_response(exc)
        await response(scope, _nothing, send)


async def _nothing() -> Message:  # pragma: no cover - the 413 response reads no body
    return {"type": "http.disconnect"}


class Timeout:
    """ASGI middleware: a request whose response has not started within ``seconds`` gets a 504
    in the error shape. The handler is cancelled (work already in a worker thread finishes
    and is discarded); a response that has started (a stream) is never cut."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, sending))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if task in done or started:
            await task
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not started:
            body = error_body("timeout", f"no response within {self.seconds:g} s", 504)
            await JSONResponse(body, 504)(scope, _nothing, send)
