"""What the write path consumes and reports: source items (``ItemLike``, ``ItemError``), the
parser and redactor it is given, a run's options (``IngestOptions``) and result
(``IngestSummary``), and how a document's stored version records the parser's settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ragstack.domain import PUBLIC, MetaValue
from ragstack.parsing import ParsedDocument
from ragstack.redaction import Redaction

# -- what the pipeline consumes -----------------------------------------------------------------


class AclLike(Protocol):
    @property
    def tenant(self) -> str | None: ...

    @property
    def principals(self) -> frozenset[str]: ...


class ItemLike(Protocol):
    """A connector's source item, as the pipeline uses it."""

    @property
    def source(self) -> str: ...

    @property
    def uri(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def mime(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, MetaValue]: ...

    @property
    def acl(self) -> AclLike | None: ...

    @property
    def size(self) -> int | None: ...

    def read(self) -> bytes: ...


@dataclass(frozen=True)
class ItemError:
    """A per-item problem reported by a connector (the scan goes on)."""

    uri: str
    kind: str
    reason: str


class Parser(Protocol):
    def parse(self, data: bytes, *, filename: str, mime: str | None) -> ParsedDocument:
        """Raises ``UnsupportedDocumentError``, ``DocumentTooLargeError`` or ``ParseError``."""
        ...

    def tag(self, ocr_inputs: bool) -> str:
        """The parser's settings that decide what a document parses to, as a short tag
        (``ocr_inputs``: the document has images or scanned pages, so OCR settings count)."""
        ...

    def with_ocr_mode(self, mode: Literal["auto", "always", "off"]) -> Parser:
        """The same parser with a collection's OCR mode."""
        ...


PARSE_TAG = "+parse:"


def stored_version(version: str, parse_tag: str) -> str:
    """What a document's row keeps as its version: the source's version and the parser's tag
    (parser settings count as content: a change of them re-parses the document)."""
    return f"{version}{PARSE_TAG}{parse_tag}"


def is_unchanged(stored: str, version: str, parser: Parser) -> bool:
    """Whether a document stored as ``stored`` needs no new parse for a source ``version``:
    the same bytes, and the same parser tag for what the document held (a document without
    images or scanned pages ignores OCR settings, so turning OCR on leaves it alone)."""
    base, sep, tag = stored.rpartition(PARSE_TAG)
    if not sep or base != version:
        return False
    return tag == parser.tag(ocr_inputs=tag.startswith("o"))


class Redactor(Protocol):
    def redact_many(self, texts: Sequence[str]) -> list[Redaction]:
        """Each text redacted (one batch, so NER runs once per document)."""
        ...


# -- results ------------------------------------------------------------------------------------


@dataclass
class IngestSummary:
    run_id: int
    collection: str
    ingested: int = 0
    updated: int = 0
    acl_updated: int = 0  # unchanged content, changed ACL or tenant: ACL rows rewritten
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    chunks: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    ocr_pages: int = 0  # pages and images read by OCR
    ocr_seconds: float = 0.0
    seconds: float = 0.0
    problems: list[ItemError] = field(default_factory=list)
    recovered: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            k: getattr(self, k)
            for k in (
                "ingested",
                "updated",
                "acl_updated",
                "unchanged",
                "deleted",
                "skipped",
                "failed",
                "chunks",
                "chunks_embedded",
                "chunks_reused",
                "ocr_pages",
            )
        }


class Progress(Protocol):
    def start(self, total: int | None) -> None: ...

    def advance(self, documents: int, chunks: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, total: int | None) -> None:
        pass

    def advance(self, documents: int, chunks: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class IngestOptions:
    principals: frozenset[str]  # ACL for items whose source says nothing
    tenant: str | None
    max_file_bytes: int
    batch_chunks: int = 256
    save_interval_s: float = 30.0
    delete_missing: bool = True
    namespace: str = ""  # whose documents this run may replace ("": the operator's)
    # who asked (principals, tenant), when an item may replace only documents they may read
    replaces_only_readable: tuple[tuple[str, ...], str | None] | None = None
    ocr_mode: Literal["auto", "always", "off"] = "auto"
    prepare_workers: int = 1  # documents prepared at once (OCR waits on Tesseract, not Python)

    def acl_of(self, item: ItemLike) -> tuple[frozenset[str], str | None]:
        """The item's effective ``(principals, tenant)``: what its source says (a sidecar, an
        ACL column), else this run's ``principals`` and ``tenant``."""
        acl = item.acl
        principals = acl.principals if acl is not None and acl.principals else self.principals
        tenant = (acl.tenant if acl is not None and acl.tenant else None) or self.tenant
        return frozenset(principals), tenant


def default_principals(
    owner: str, *, public: bool, allow: Sequence[str], collection_default: Sequence[str]
) -> frozenset[str]:
    """The ACL for items whose source gives none: ``--public``, ``--allow``, else the
    collection's default (private to its owner)."""
    if public:
        return frozenset({PUBLIC})
    if allow:
        return frozenset(allow)
    return frozenset(collection_default or (owner,))
