"""Turns what a user typed (a path, a folder, a BEIR corpus) into a connector's item stream."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors import (
    BeirConnector,
    ConnectorError,
    FetchPolicy,
    FilesystemConnector,
    ScanError,
    SourceItem,
    SqlConnector,
    WebConnector,
)
from ragstack.errors import InputError
from ragstack.ingest.items import ItemError, ItemLike
from ragstack.service import ResolvedSource, SourceSpec, SqlQuery


def _adapt(items: Iterable[SourceItem | ScanError]) -> Iterator[ItemLike | ItemError]:
    try:
        for item in items:
            if isinstance(item, ScanError):
                yield ItemError(item.uri, item.kind, item.reason)
            else:
                yield item
    except ConnectorError as exc:  # the source as a whole failed mid-scan: say why
        raise InputError(str(exc)) from exc


def _oversize(
    items: Iterable[SourceItem | ScanError], max_bytes: int
) -> Iterator[SourceItem | ScanError]:
    for item in items:
        if isinstance(item, SourceItem) and item.size is not None and item.size > max_bytes:
            yield ScanError(
                item.uri, "too_large", f"{item.size:,} bytes is over the {max_bytes:,}-byte limit"
            )
        else:
            yield item


_DATABASE_URL = re.compile(r"^[a-z][a-z0-9]*(\+[a-z0-9_]+)?://", re.IGNORECASE)
_FROM_TABLE = re.compile(r"\bfrom\s+[\"`\[]?([A-Za-z_][\w.]*)", re.IGNORECASE)


def is_database_url(location: str) -> bool:
    return bool(_DATABASE_URL.match(location)) and not location.startswith(
        ("http://", "https://", "file://")
    )


def _sql(location: str, sql: SqlQuery | None, max_bytes: int) -> ResolvedSource:
    if sql is None:
        raise InputError(
            "a database URL needs a query: --sql-query 'SELECT ...' and --sql-text COLUMN "
            "(see ragstack ingest --help)"
        )
    table = _FROM_TABLE.search(sql.query)
    db = SqlConnector(
        location,
        sql.query,
        name=sql.name or (table.group(1) if table else "rows"),
        id_column=sql.id_column,
        text_columns=sql.text_columns,
        title_column=sql.title_column,
        metadata_columns=sql.metadata_columns,
        acl_column=sql.acl_column,
    )
    return ResolvedSource(db.name, _adapt(_oversize(db.scan(), max_bytes)), None)


def resolve_source(spec: SourceSpec, max_bytes: int, fetching: FetchPolicy) -> ResolvedSource:
    """The source ``spec`` names. URLs are fetched under ``fetching`` (who may fetch what);
    a URL whose body is a sitemap (or sitemap index) is read as one, whatever its name."""
    location = spec.location
    if spec.uploads:
        from ragstack.ingest.uploads import upload_items

        items = upload_items(Path(location), spec.include, max_bytes)
        return ResolvedSource("upload", _adapt(items), len(spec.include))
    try:
        if is_database_url(location):
            return _sql(location, spec.sql, max_bytes)
        if spec.sql is not None:
            raise InputError(
                f"--sql-query needs a database URL (sqlite:///..., ...), not {location}"
            )
        if location.startswith(("http://", "https://")):
            web = WebConnector(
                [location],
                detect_sitemaps=True,
                max_depth=spec.crawl_depth,
                max_bytes=max_bytes,
                policy=fetching,
            )
            return ResolvedSource(web.name, _adapt(_oversize(web.scan(), max_bytes)), None)
        path = Path(location).expanduser()
        if path.name == "corpus.jsonl" or (
            path.is_dir() and (path / "corpus.jsonl").is_file() and not spec.include
        ):
            beir = BeirConnector(path)
            return ResolvedSource(beir.name, _adapt(beir.scan()), beir.count())
        fs = FilesystemConnector(
            path, include=spec.include, exclude=spec.exclude, max_bytes=max_bytes
        )
        return ResolvedSource(fs.name, _adapt(fs.scan()), fs.count())
    except ConnectorError as exc:
        raise InputError(str(exc)) from exc
