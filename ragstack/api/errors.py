"""Domain errors to HTTP (the one place the mapping lives), the error body, and the request
limits that answer in the same shape: token buckets (requests per key, failed authentications
per client address), a request body limit and a request timeout."""

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
    AbortedError,
    BusyError,
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
    (UnavailableError, 503),  # BusyError too: the server is saturated, not this caller
    (AbortedError, 499),  # the caller left (nginx's "client closed request"): audit rows only
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
    if isinstance(exc, RateLimitedError | BusyError):
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
    """A token bucket per key: ``burst`` at once, refilled at ``rate`` per second. ``take``
    spends a token or refuses; ``check`` refuses an empty bucket without spending and ``spend``
    spends without refusing (failed logins: refused before the key is checked, counted after).
    Full buckets are forgotten once there are ``max_keys`` (a full one is a fresh one)."""

    def __init__(self, rate: float, burst: int, *, what: str = "requests",
                 max_keys: int = 100_000) -> None:  # fmt: skip
        self.rate, self.burst, self.what, self.max_keys = rate, burst, what, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)

    def _refuse(self, tokens: float) -> RateLimitedError:
        wait = (1.0 - tokens) / self.rate
        return RateLimitedError(f"rate limit of {self.rate:g} {self.what}/s exceeded", wait)

    def take(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise self._refuse(tokens)
            self._put(key, tokens - 1.0, now)

    def check(self, key: str) -> None:
        with self._lock:
            tokens = self._tokens(key, time.monotonic())
        if tokens < 1.0:
            raise self._refuse(tokens)

    def spend(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._put(key, max(0.0, self._tokens(key, now) - 1.0), now)

    def _put(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            for k in [k for k in self._buckets if self._tokens(k, now) >= self.burst]:
                del self._buckets[k]
            while len(self._buckets) >= self.max_keys:  # still full: the oldest go first
                del self._buckets[next(iter(self._buckets))]
        self._buckets[key] = (tokens, now)


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
    in the error shape. The handler is cancelled (an answer's worker thread is told to stop:
    ``ragstack.api.slots``; other work in a worker thread finishes and is discarded); a
    response that has started (a stream) is never cut."""

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
