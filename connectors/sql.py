"""Rows of a SQL query as documents, on any SQLAlchemy URL: one document per row.

* ``id_column`` holds the row's stable identity; ``uri`` is
  ``sql://<host:port/database, no user, password or query string>/<name>/<id>`` (the id
  percent-encoded). The user name is left out too, so that connecting as another account
  does not rename every document; a SQLite path is made absolute.
* ``text_columns`` are joined (non-NULL values, blank line between) into the text; the
  bytes are ``title + "\\n\\n" + text`` (just the text without a title), mime ``text/plain``.
* ``metadata_columns`` become metadata: str/int/float/bool as they are, dates and times in
  ISO 8601, decimals as floats, other values as strings; NULLs and binary values are left out.
* ``acl_column`` (optional) holds a JSON ACL object (``{"tenant": ..., "allow": [...]}``), a
  JSON list of principals, or comma-separated principals; NULL or empty means the source
  says nothing (``acl=None``).
* ``version`` is ``sha256:`` of the row's title, text and metadata (canonical JSON); the ACL is
  the item's ``acl``, compared on its own.
* A row with a NULL or repeated id, or a malformed ACL, becomes a ScanError; a missing
  column, an unreachable database or a failing query raises ``SourceUnavailableError``.

SQLAlchemy is imported when a connector is made, not when ``connectors`` is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import quote

from connectors.base import (
    Acl,
    AclError,
    ConfigError,
    ErrorKind,
    InMemory,
    MetaValue,
    ScanError,
    SourceItem,
    SourceUnavailableError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, RowMapping

_BATCH = 1000


def redacted_location(url: URL) -> str:
    """``host:port/database`` (or the absolute SQLite path) with no credentials or options."""
    if url.get_backend_name() == "sqlite":
        from pathlib import Path

        db = url.database or ""
        return str(Path(db).absolute()) if db and db != ":memory:" else db or ":memory:"
    host = url.host or ""
    if url.port is not None:
        host = f"{host}:{url.port}"
    return f"{host}/{url.database or ''}"


def parse_acl(value: object) -> Acl | None:
    """An ACL from a column value (see the module doc); ``None`` for NULL or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AclError(f"not JSON: {exc.msg}") from exc
    if isinstance(value, str):
        value = {"allow": [p.strip() for p in value.split(",") if p.strip()]}
    if isinstance(value, list):
        value = {"allow": value}
    return Acl.from_json(value)


def _meta_value(value: object) -> MetaValue | None:
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


class SqlConnector:
    """One document per row of ``query`` on the database at ``url``.

    ``name`` names the query in URIs (a table name is a good choice) and must stay the same
    between scans, or every document gets a new URI.
    """

    def __init__(
        self,
        url: str,
        query: str,
        *,
        name: str,
        id_column: str,
        text_columns: Sequence[str],
        title_column: str | None = None,
        metadata_columns: Sequence[str] = (),
        acl_column: str | None = None,
    ) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"not a database URL: {str(exc).splitlines()[0]}") from exc
        if not query.strip():
            raise ConfigError("the query is empty")
        if not name or "/" in name:
            raise ConfigError(f"name must be non-empty and contain no '/': {name!r}")
        if not text_columns:
            raise ConfigError("at least one text column is needed")
        self.query = query
        self.id_column = id_column
        self.text_columns = tuple(text_columns)
        self.title_column = title_column
        self.metadata_columns = tuple(metadata_columns)
        self.acl_column = acl_column
        self._location = redacted_location(self._url)
        self.base_uri = f"sql://{self._location}/{quote(name, safe='')}"
        self.name = f"sql:{self._url.get_backend_name()}:{self._location}/{name}"

    def _needed(self) -> set[str]:
        cols = {self.id_column, *self.text_columns, *self.metadata_columns}
        cols |= {c for c in (self.title_column, self.acl_column) if c}
        return cols

    def scan(self) -> Iterator[SourceItem | ScanError]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        where = f"database {self._location}"
        try:
            engine = create_engine(self._url)
        except (ImportError, SQLAlchemyError) as exc:
            raise SourceUnavailableError(
                f"cannot use {where}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from exc
        try:
            with engine.connect() as conn:
                result = conn.execution_options(yield_per=_BATCH).execute(text(self.query))
                columns = list(result.keys())
                missing = self._needed() - set(columns)
                if missing:
                    raise SourceUnavailableError(
                        f"the query returns no column(s) {sorted(missing)}; it has {columns}"
                    )
                first_row: dict[str, int] = {}
                for n, row in enumerate(result.mappings(), 1):
                    yield self._item(row, n, first_row)
        except SQLAlchemyError as exc:
            raise SourceUnavailableError(
                f"query on {where} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from exc
        finally:
            engine.dispose()

    def _item(self, row: RowMapping, n: int, first_row: dict[str, int]) -> SourceItem | ScanError:
        raw_id = row[self.id_column]
        if raw_id is None:
            return ScanError(
                f"{self.base_uri}/?row={n}",
                ErrorKind.BAD_RECORD,
                f"row {n}: the id column {self.id_column!r} is NULL",
            )
        row_id = str(raw_id)
        uri = f"{self.base_uri}/{quote(row_id, safe='')}"
        if row_id in first_row:
            return ScanError(
                uri,
                ErrorKind.BAD_RECORD,
                f"row {n}: duplicate id {row_id!r} (first in row {first_row[row_id]})",
            )
        first_row[row_id] = n
        try:
            acl = parse_acl(row[self.acl_column]) if self.acl_column else None
        except AclError as exc:
            return ScanError(uri, ErrorKind.BAD_ACL, f"row {n} (id {row_id}): bad ACL: {exc}")
        texts = [str(row[c]) for c in self.text_columns if row[c] is not None]
        body = "\n\n".join(t for t in texts if t.strip())
        title_value = row[self.title_column] if self.title_column else None
        title = str(title_value).strip() if title_value is not None else ""
        meta: dict[str, MetaValue] = {}
        for col in self.metadata_columns:
            value = _meta_value(row[col])
            if value is not None:
                meta[col] = value
        canon = json.dumps(
            {"title": title, "text": body, "metadata": meta},
            sort_keys=True,
            ensure_ascii=False,
        )
        version = "sha256:" + hashlib.sha256(canon.encode()).hexdigest()
        data = (f"{title}\n\n{body}" if title else body).encode("utf-8")
        return SourceItem(
            source=self.name,
            uri=uri,
            version=version,
            title=title,
            mime="text/plain",
            reader=InMemory(data),
            metadata=meta,
            acl=acl,
            size=len(data),
        )
