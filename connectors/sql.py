"""Rows of a SQL query as documents, on any SQLAlchemy URL (one document per row).

``id_column`` names the row's stable identity; ``text_columns`` are joined (each prefixed by
its column name when there are several) into the document text; ``title_column`` and
``metadata_columns`` are optional; ``acl_column`` may hold a JSON ACL object, a JSON list of
principals, or comma-separated principals. The URI never contains the password.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from connectors.base import (
    Acl,
    MetaValue,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    constant,
)


class SqlConnector:
    def __init__(
        self,
        url: str,
        query: str,
        *,
        id_column: str,
        text_columns: Sequence[str],
        title_column: str | None = None,
        metadata_columns: Sequence[str] = (),
        acl_column: str | None = None,
        name: str = "query",
    ) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise SourceUnavailableError(f"not a database URL: {exc}") from exc
        self.query = query
        self.id_column = id_column
        self.text_columns = tuple(text_columns)
        if not self.text_columns:
            raise ValueError("at least one text column is needed")
        self.title_column = title_column
        self.metadata_columns = tuple(metadata_columns)
        self.acl_column = acl_column
        safe = self._url.render_as_string(hide_password=True)
        self.base_uri = f"sql://{safe.split('://', 1)[-1]}/{name}"
        self.name = f"sql:{safe}/{name}"

    def _acl(self, value: Any) -> Acl | None:
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.strip().startswith(("{", "[")):
            value = json.loads(value)
        if isinstance(value, str):
            value = {"allow": [p.strip() for p in value.split(",") if p.strip()]}
        if isinstance(value, list):
            value = {"allow": value}
        return Acl.from_json(value)

    def scan(self) -> Iterator[SourceItem | ScanError]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = create_engine(self._url)
        except (ImportError, SQLAlchemyError) as exc:
            raise SourceUnavailableError(f"cannot use {self.name}: {exc}") from exc
        try:
            with engine.connect() as conn:
                result = conn.execute(text(self.query))
                columns = list(result.keys())
                missing = {self.id_column, *self.text_columns} - set(columns)
                if missing:
                    raise SourceUnavailableError(
                        f"the query returns no column(s) {sorted(missing)}; it has {columns}"
                    )
                for row in result.mappings():
                    yield self._item(row)
        except SQLAlchemyError as exc:
            raise SourceUnavailableError(
                f"query failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc

    def _item(self, row: Any) -> SourceItem | ScanError:
        row_id = row[self.id_column]
        uri = f"{self.base_uri}/{row_id}"
        try:
            acl = self._acl(row[self.acl_column]) if self.acl_column else None
        except (ValueError, TypeError) as exc:
            return ScanError(uri, "bad_acl", f"row {row_id}: unreadable ACL: {exc}")
        parts = []
        for col in self.text_columns:
            value = row[col]
            if value is None:
                continue
            parts.append(f"{col}: {value}" if len(self.text_columns) > 1 else str(value))
        body = "\n\n".join(parts)
        title = str(row[self.title_column]) if self.title_column and row[self.title_column] else ""
        meta: dict[str, MetaValue] = {}
        for col in self.metadata_columns:
            value = row[col]
            if isinstance(value, str | int | float | bool):
                meta[col] = value
            elif value is not None:
                meta[col] = str(value)
        data = (f"# {title}\n\n{body}" if title else body).encode("utf-8")
        digest = hashlib.sha256(data + json.dumps(meta, sort_keys=True).encode()).hexdigest()
        return SourceItem(
            source=self.name,
            uri=uri,
            version=f"sha256:{digest}",
            title=title,
            mime="text/markdown",
            reader=constant(data),
            metadata=meta,
            acl=acl,
            size=len(data),
        )
