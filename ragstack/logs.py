"""Logging: one configuration for the CLI and the server, through the standard ``logging``.

``configure(level, fmt)`` installs one handler on the root logger, writing to stderr (stdout
belongs to command output and to the MCP stdio transport): one JSON object per line with
``fmt="json"`` (``RAGSTACK_LOG_FORMAT=json``), a readable line otherwise. uvicorn's loggers
are routed through it (their own handlers removed), and its access log is replaced by ours
(``ragstack.access``: method, route template, status, latency, request id; never a query
string, a body or a key).

Every record carries the request id of the request it was logged in (``request_id``; ``-``
outside one): the API's middleware sets it (``request_scope``), returns it as
``X-Request-ID`` and stores it in the audit row, so a log line, a client's error report and
an audit row name the same request.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

LogFormat = Literal["text", "json"]
LEVELS = ("debug", "info", "warning", "error", "critical")

_request_id: ContextVar[str | None] = ContextVar("ragstack_request_id", default=None)
# What an incoming X-Request-ID may be to be kept: short, and nothing a log or a header could
# be broken by (no spaces, quotes, control characters, newlines).
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
_HANDLER_NAME = "ragstack"


def current_request_id() -> str | None:
    return _request_id.get()


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` if it is well-formed (at most 64 letters, digits and
    ``._:-``), else a new one (32 hex digits)."""
    if header and _WELL_FORMED.match(header):
        return header
    return uuid.uuid4().hex


@contextmanager
def request_scope(request_id: str) -> Iterator[None]:
    """Records logged inside carry ``request_id`` (threads started from here inherit it:
    anyio's worker threads run in a copy of the caller's context)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or "-"
        return True


def _formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    return logging.Formatter(_TEXT_FORMAT)


def configure(level: str = "info", fmt: LogFormat = "text") -> None:
    """Route every log record through one stderr handler at ``level`` (idempotent: a second
    call replaces the first's handler, so a test or a command can reconfigure)."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_formatter(fmt))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
        routed.setLevel(logging.NOTSET)
    # ours replaces it (with the route template and the request id)
    logging.getLogger("uvicorn.access").disabled = True
