"""What callers hand the service and what it hands back: source specs, ingest requests,
search responses, and the components the composition root builds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.fetch import FetchPolicy
from ragstack.answering import MemoEmbed
from ragstack.domain import CollectionInfo
from ragstack.embedders import Models
from ragstack.embedding import Embedder
from ragstack.generation.base import Generator
from ragstack.ingest.chunking import Chunker
from ragstack.ingest.items import ItemError, ItemLike, Parser, Redactor
from ragstack.rerank import Reranker
from ragstack.search import Fusion, Hit, Mode


@dataclass(frozen=True)
class SqlQuery:
    """For a database source: one document per row of ``query``."""

    query: str
    text_columns: tuple[str, ...]
    id_column: str = "id"
    title_column: str | None = None
    metadata_columns: tuple[str, ...] = ()
    acl_column: str | None = None
    name: str | None = None  # names the rows in their URIs; default: the table queried


@dataclass(frozen=True)
class SourceSpec:
    """Where to ingest from: a path, a web URL, a BEIR corpus, or a database URL with a
    ``sql`` query; globs apply to file trees."""

    location: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    crawl_depth: int = 0  # for URLs: how many links away from the start page to follow
    sql: SqlQuery | None = None
    uploads: bool = False  # files an API caller uploaded to ``location``: no ACL sidecars


@dataclass(frozen=True)
class ResolvedSource:
    source_id: str
    items: Iterable[ItemLike | ItemError]
    total: int | None


SourceResolver = Callable[[SourceSpec, int, FetchPolicy], ResolvedSource]


@dataclass(frozen=True)
class SearchResponse:
    hits: list[Hit]
    mode: Mode
    fusion: Fusion
    generation: int  # of the collection the hits come from
    timings_ms: dict[str, float]

    def hit_dicts(self) -> list[dict[str, Any]]:
        """The hits as the CLI's ``--json`` and the API return them."""
        return [
            {
                "rank": n,
                "score": round(h.score, 6),
                "chunk_id": h.chunk_id,
                "document_id": h.document_id,
                "uri": h.uri,
                "title": h.title,
                "section": h.section,
                "page": h.page,
                "char_start": h.char_start,
                "char_end": h.char_end,
                "instruction_like": h.instruction_like,
                "ocr": h.ocr,
                "text": h.text,
            }
            for n, h in enumerate(self.hits, 1)
        ]


@dataclass(frozen=True)
class IngestRequest:
    collection: str
    sources: Sequence[SourceSpec]
    allow: Sequence[str] = ()
    public: bool = False
    tenant: str | None = None
    delete_missing: bool = True
    pii_mode: str | None = None  # for a collection this ingest creates
    pii_ner: bool | None = None
    executor: str = "local"  # local | ray: where documents are prepared and embedded
    ray_address: str | None = None  # with ray: a cluster to join (default: a local Ray)
    # Whose documents this ingest may replace: "" (the operator's: CLI ingests), or an API
    # caller's own namespace, with the caller's (principals, tenant): an item then replaces
    # only a document of that namespace the caller may still read.
    namespace: str = ""
    replaces_only_readable: tuple[tuple[str, ...], str | None] | None = None
    ocr: str | None = None  # auto | always | off: the collection's OCR mode from now on
    # who asks: True for the operator's own command line (may fetch private addresses when
    # settings allow), False for anyone else (the API): URLs only on public addresses
    trusted: bool = False


@dataclass
class Components:
    """What the composition root builds for the service."""

    models: Models  # model id -> embedder, chunker and memo; each collection uses its own
    parser: Parser
    redactor_for: Callable[[CollectionInfo, str], Redactor]  # (collection, salt) -> redactor
    resolve_source: SourceResolver
    fetch_policy_for: Callable[[bool], FetchPolicy] = field(default=lambda _trusted: FetchPolicy())
    generator_for: Callable[[str], Generator] | None = None  # by name, built lazily
    reranker: Reranker | None = None
    extras: dict[str, object] = field(default_factory=dict)
    # (what an operator names an embedder by, a local model's path) -> the model id
    model_id_for: Callable[[str, Path | None], str] = field(default=lambda name, _path: name)

    @property
    def embedder(self) -> Embedder:
        """The default embedder: the one new collections pin."""
        return self.models.default().embedder

    @property
    def chunker(self) -> Chunker:
        return self.models.default().chunker

    @property
    def memo(self) -> MemoEmbed:
        return self.models.default().memo
