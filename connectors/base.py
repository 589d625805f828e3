"""What every connector yields, and the errors it reports.

A connector's ``scan()`` yields every item currently in its source: a ``SourceItem`` for a
readable document, or a ``ScanError`` for one it could not take (the scan goes on).

Errors::

    ConnectorError              base of what connectors raise for a whole source
    └── SourceUnavailableError  the source as a whole cannot be read (missing root, bad URL)
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

MetaValue = str | int | float | bool

for _ext, _mime in {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".eml": "message/rfc822",
    ".msg": "application/vnd.ms-outlook",
    ".epub": "application/epub+zip",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".rtf": "text/rtf",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".org": "text/org",
    ".rst": "text/x-rst",
    ".tsv": "text/tab-separated-values",
    ".htm": "text/html",
}.items():
    mimetypes.add_type(_mime, _ext)


class ConnectorError(Exception):
    """Base of the errors a connector raises for a whole source."""


class SourceUnavailableError(ConnectorError):
    """The source as a whole cannot be read."""


@dataclass(frozen=True)
class Acl:
    """Who may read an item: ``user:NAME``, ``group:NAME`` or ``public``, within a tenant."""

    principals: frozenset[str]
    tenant: str | None = None

    @classmethod
    def from_json(cls, data: object) -> Acl:
        """``{"allow": [...], "tenant": "..."}`` or ``{"public": true}``."""
        if not isinstance(data, Mapping):
            raise ValueError("an ACL must be a JSON object")
        tenant = data.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise ValueError("'tenant' must be a string")
        principals: set[str] = set()
        if data.get("public") is True:
            principals.add("public")
        allow = data.get("allow", [])
        if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow):
            raise ValueError("'allow' must be a list of principals")
        for p in allow:
            kind, _, name = p.partition(":")
            if p != "public" and (kind not in ("user", "group") or not name):
                raise ValueError(f"not a principal: {p!r} (user:NAME, group:NAME or public)")
            principals.add(p)
        if not principals:
            raise ValueError("an ACL must allow someone ('allow' or 'public')")
        return cls(frozenset(principals), tenant)


@dataclass(frozen=True)
class SourceItem:
    """One document of a source. ``read()`` fetches its bytes lazily."""

    source: str
    uri: str
    version: str
    title: str
    mime: str
    reader: Callable[[], bytes] = field(repr=False, compare=False)
    metadata: Mapping[str, MetaValue] = field(default_factory=dict)
    acl: Acl | None = None
    size: int | None = None

    def read(self) -> bytes:
        return self.reader()


@dataclass(frozen=True)
class ScanError:
    """An item the connector could not take, with a reason a person can act on."""

    uri: str
    kind: str  # too_large | unreadable | fetch_error | bad_acl | bad_record ...
    reason: str


class Connector(Protocol):
    name: str

    def scan(self) -> Iterator[SourceItem | ScanError]: ...


def constant(data: bytes) -> Callable[[], bytes]:
    """A reader for bytes already in memory."""

    def read() -> bytes:
        return data

    return read


def content_version(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def load_acl(path: Path) -> Acl:
    return Acl.from_json(json.loads(path.read_text(encoding="utf-8")))
