"""Turns what a user typed (a path, a folder, a BEIR corpus) into a connector's item stream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors import (
    BeirConnector,
    ConnectorError,
    FilesystemConnector,
    ScanError,
    SourceItem,
    WebConnector,
)
from ragstack.errors import InputError
from ragstack.ingest.pipeline import ItemError, ItemLike
from ragstack.service import ResolvedSource, SourceSpec


def _adapt(items: Iterable[SourceItem | ScanError]) -> Iterator[ItemLike | ItemError]:
    for item in items:
        if isinstance(item, ScanError):
            yield ItemError(item.uri, item.kind, item.reason)
        else:
            yield item


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


def resolve_source(spec: SourceSpec, max_bytes: int) -> ResolvedSource:
    location = spec.location
    try:
        if location.startswith(("http://", "https://")):
            is_sitemap = location.rstrip("/").endswith(".xml")
            web = WebConnector(
                [] if is_sitemap else [location],
                sitemap=location if is_sitemap else None,
                max_depth=spec.crawl_depth,
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
