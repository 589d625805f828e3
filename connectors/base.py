"""What every connector yields, and the errors it reports.

A connector's ``scan()`` yields every item currently in its source, one value per item:

* a ``SourceItem`` for a document it can hand over (its bytes are read by ``item.read()``);
* a ``ScanError`` for one it cannot take, with a ``kind`` (an ``ErrorKind``) and a reason a
  person can act on. A ScanError is yielded, never raised: one bad item never stops a scan.

Exceptions are for what no single item explains. The tree::

    ConnectorError                  base of everything this package raises
    ├── ConfigError                 the connector was set up wrongly (also a ValueError)
    ├── SourceUnavailableError      the source as a whole cannot be read: missing root,
    │                               unreachable database, failing query, unusable sitemap
    ├── AclError                    an ACL value is malformed (also a ValueError); scans
    │                               report it per item as ScanError(kind=BAD_ACL)
    └── ItemReadError               ``SourceItem.read()`` failed after the scan (also an OSError)
        └── ContentChangedError     the bytes no longer match the version the scan reported

``ConfigError`` is raised by constructors; ``SourceUnavailableError`` by constructors (cheap
checks) or by ``scan()`` before or during iteration; ``ItemReadError`` only by ``read()``.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

MetaValue = str | int | float | bool
"""A metadata value: metadata stays flat and JSON-friendly."""


class ConnectorError(Exception):
    """Base of everything this package raises."""


class ConfigError(ConnectorError, ValueError):
    """The connector was configured wrongly (bad argument, URL or pattern)."""


class SourceUnavailableError(ConnectorError):
    """The source as a whole cannot be read."""


class AclError(ConnectorError, ValueError):
    """An ACL value (sidecar file, column, ...) is malformed."""


class ItemReadError(ConnectorError, OSError):
    """An item's bytes could not be read after the scan listed it."""


class ContentChangedError(ItemReadError):
    """The bytes read differ from what the scan hashed: the item changed in between.

    The next scan reports the new version; nothing is lost by skipping the item now.
    """


class ErrorKind(StrEnum):
    """Why an item became a ``ScanError`` (values are stable strings)."""

    TOO_LARGE = "too_large"  # over the connector's size limit; not read
    UNREADABLE = "unreadable"  # cannot stat/list/read: permissions, I/O, broken symlink
    UNSUPPORTED = "unsupported"  # not a regular file (FIFO, socket, device)
    OUTSIDE_ROOT = "outside_root"  # a symlink leads outside the root; not followed
    SYMLINK_LOOP = "symlink_loop"  # a symlink leads back to itself or an enclosing folder
    BAD_ACL = "bad_acl"  # the item's ACL (sidecar, column) is malformed
    BAD_RECORD = "bad_record"  # a malformed line or row (BEIR, SQL)
    FETCH_ERROR = "fetch_error"  # network error, timeout, HTTP error status
    ROBOTS = "robots"  # robots.txt forbids fetching it
    OFF_SITE = "off_site"  # redirected to, or listed by a sitemap of, another site; not fetched
    REFUSED = "refused"  # the fetch policy forbids the URL or its address (e.g. loopback)


@dataclass(frozen=True)
class Acl:
    """Who may read an item: principals ``user:NAME``, ``group:NAME`` or ``public``.

    ``tenant`` scopes the item to one tenant (``None``: the source does not say).
    """

    tenant: str | None
    principals: frozenset[str]

    def __post_init__(self) -> None:
        if not self.principals:
            raise AclError("an ACL must allow someone (a principal or public)")
        for p in self.principals:
            check_principal(p)
        if self.tenant is not None and not self.tenant.strip():
            raise AclError("'tenant' must not be blank")

    @classmethod
    def public(cls, tenant: str | None = None) -> Acl:
        return cls(tenant, frozenset({"public"}))

    @classmethod
    def from_json(cls, data: object) -> Acl:
        """The sidecar shape.

        ``{"tenant": "acme", "allow": ["user:alice", "group:eng"]}`` or ``{"public": true}``
        (``tenant`` optional; ``public`` and ``allow`` may be combined). Unknown keys are an
        error, so a typo never silently widens or drops a rule.
        """
        if not isinstance(data, Mapping):
            raise AclError("an ACL must be a JSON object")
        unknown = set(data) - {"tenant", "allow", "public"}
        if unknown:
            raise AclError(f"unknown ACL key(s) {sorted(unknown)}: use tenant, allow, public")
        tenant = data.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AclError("'tenant' must be a string")
        public = data.get("public", False)
        if not isinstance(public, bool):
            raise AclError("'public' must be true or false")
        allow = data.get("allow", [])
        if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow):
            raise AclError("'allow' must be a list of principals")
        principals = {p.strip() for p in allow}
        if public:
            principals.add("public")
        return cls(tenant, frozenset(principals))

    def to_json(self) -> dict[str, object]:
        """The canonical JSON form (sorted principals), the inverse of ``from_json``."""
        out: dict[str, object] = {"allow": sorted(self.principals)}
        if self.tenant is not None:
            out["tenant"] = self.tenant
        return out


def check_principal(p: str) -> None:
    """Raise ``AclError`` unless ``p`` is ``public``, ``user:NAME`` or ``group:NAME``."""
    kind, sep, name = p.partition(":")
    if p == "public" or (sep and kind in ("user", "group") and name.strip() == name and name):
        return
    raise AclError(f"not a principal: {p!r} (use user:NAME, group:NAME or public)")


@dataclass(frozen=True)
class SourceItem:
    """One document of a source.

    * ``uri`` is stable across scans; (``source``, ``uri``) identifies the document.
    * ``version`` changes whenever the content changes: ``sha256:<hex>`` of the content, or
      ``etag:<value>`` from a web server. It says nothing of the ACL: a consumer that skips
      unchanged versions compares ``acl`` on its own, so a permission change alone updates
      permissions without re-reading the content.
    * ``read()`` (alias ``open()``) returns the bytes; it may touch the source again, so it
      can raise ``ItemReadError``. ``reader`` is the callable behind it.
    * ``acl`` is ``None`` when the source says nothing about permissions.
    """

    source: str
    uri: str
    version: str
    title: str
    mime: str
    reader: Callable[[], bytes] = field(repr=False, compare=False)
    metadata: dict[str, MetaValue] = field(default_factory=dict, hash=False)
    acl: Acl | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", dict(self.metadata))

    def read(self) -> bytes:
        return self.reader()

    def open(self) -> bytes:
        """Same as ``read()``."""
        return self.reader()


@dataclass(frozen=True)
class ScanError:
    """An item the connector could not take, with a reason a person can act on.

    ``kind`` is an ``ErrorKind`` (a ``str``; typed ``str`` so that consumers may add kinds of
    their own when they re-report an item).
    """

    uri: str
    kind: str
    reason: str


ScanResult = SourceItem | ScanError


@runtime_checkable
class Connector(Protocol):
    """A source of documents. ``scan()`` yields every item currently in it.

    Per-item problems are yielded as ``ScanError``; only a failure of the whole source
    raises (a ``ConnectorError``).
    """

    name: str

    def scan(self) -> Iterator[SourceItem | ScanError]: ...


def partition(results: Iterable[ScanResult]) -> tuple[list[SourceItem], list[ScanError]]:
    """Split a scan into its items and its errors (consumes the iterable)."""
    items: list[SourceItem] = []
    errors: list[ScanError] = []
    for r in results:
        if isinstance(r, ScanError):
            errors.append(r)
        else:
            items.append(r)
    return items, errors


@dataclass(frozen=True)
class InMemory:
    """A reader for bytes already fetched (picklable, unlike a closure)."""

    data: bytes = field(repr=False)

    def __call__(self) -> bytes:
        return self.data


def content_version(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# Our table first (stable across hosts), then the platform's mimetypes database, which
# varies with /etc/mime.types and maps some suffixes wrongly for documents (.org, .rst).
_MIME = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".xml": "application/xml",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".org": "text/org",
    ".rst": "text/x-rst",
    ".tex": "application/x-tex",
    ".rtf": "text/rtf",
    ".eml": "message/rfc822",
    ".msg": "application/vnd.ms-outlook",
    ".pdf": "application/pdf",
    ".epub": "application/epub+zip",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
}


def guess_mime(name: str) -> str:
    """The media type for a file name or URL path; ``application/octet-stream`` if unknown."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in _MIME:
        return _MIME[suffix]
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
