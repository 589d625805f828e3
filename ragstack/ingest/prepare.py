"""One item made ready to embed: read within the size limit, parsed, redacted and chunked
(``Preparer``), with each per-item failure turned into the item's error (``problem``); the
executors that run it (``run_here``, and ``ray_executor`` elsewhere)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ragstack.errors import (
    DocumentTooLargeError,
    ParseError,
    RagstackError,
    UnsupportedDocumentError,
)
from ragstack.ingest.chunking import Block, Chunker
from ragstack.ingest.items import (
    IngestOptions,
    ItemError,
    ItemLike,
    Parser,
    Redactor,
    stored_version,
)
from ragstack.ingest.safety import looks_like_instructions
from ragstack.parsing import ParsedDocument
from ragstack.store import index_text

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """One item ready to commit: its document row's fields, its chunks (ordinal, text,
    section, page, span, tokens, whether it reads like instructions, whether OCR read it),
    the text each is embedded as and that text's hash (``text_hash``); ``vectors`` are the
    pipeline's to fill."""

    item_uri: str
    draft_fields: dict[str, object]
    chunks: list[tuple[int, str, str, int | None, int, int, int, bool, bool]]
    embed_texts: list[str]
    hashes: list[str]
    is_update: bool
    vectors: list[F32 | None] = field(default_factory=list)
    ocr_pages: int = 0
    ocr_seconds: float = 0.0


# Nothing wrong with these files: they hold nothing to index (yet: OCR may be installed later).
SKIP_KINDS = ("unsupported", "empty", "no_text", "ocr_unavailable", "ocr_language_missing")
_PARSE_REASONS = (
    "empty",
    "corrupt",
    "password-protected",
    "no-text",
    "ocr-unavailable",
    "ocr-language-missing",
)


def error_kind(exc: RagstackError) -> str:
    if isinstance(exc, UnsupportedDocumentError):
        return "unsupported"
    if isinstance(exc, DocumentTooLargeError):
        return "too_large"
    if isinstance(exc, ParseError):
        # the parser states its reason first: "empty: ...", "password-protected: ...", ...
        reason = str(exc).split(":", 1)[0].strip().lower()
        if reason in _PARSE_REASONS:
            return reason.replace("-", "_")
        return "parse_error"
    return exc.code


class Preparer:
    """Read, parse, redact and chunk one item: the producer's work, and what an ingest
    worker elsewhere (``--executor ray``) runs with the same parts."""

    def __init__(
        self, parser: Parser, redactor: Redactor, chunker: Chunker, options: IngestOptions
    ) -> None:
        self.parser = parser
        self.redactor = redactor
        self.chunker = chunker
        self.options = options
        self._lock = threading.Lock()  # redaction (spaCy) and chunking: one document at a time

    def _redact(
        self, parsed: ParsedDocument, title: str
    ) -> tuple[list[Block], dict[str, int], str]:
        """The document's blocks, section headings and title, redacted in one batch."""
        sections = sorted({s for e in parsed.elements for s in e.section})
        texts = [e.text for e in parsed.elements] + sections + [title]
        done = self.redactor.redact_many(texts)
        n = len(parsed.elements)
        heading = {s: r.text for s, r in zip(sections, done[n:-1], strict=True)}
        counts: dict[str, int] = {}
        for r in done[:n]:
            for kind, v in r.counts.items():
                counts[kind] = counts.get(kind, 0) + v
        blocks = [
            Block(r.text, e.kind, e.page, tuple(heading[s] for s in e.section), e.ocr)
            for e, r in zip(parsed.elements, done[:n], strict=True)
        ]
        return blocks, counts, done[-1].text

    def prepare(self, item: ItemLike, is_update: bool) -> Prepared:
        data = read_within(item, self.options.max_file_bytes)
        parsed = self.parser.parse(
            data, filename=item.uri.rsplit("/", 1)[-1], mime=item.mime or None
        )
        with self._lock:
            clean, counts, title = self._redact(parsed, parsed.title or item.title)
            doc_text, chunks = self.chunker.chunk(clean)
        if not chunks:
            raise ParseError("empty: no text left after parsing")
        embed_texts = [index_text(c.section, c.text) for c in chunks]
        principals, tenant = self.options.acl_of(item)
        return Prepared(
            item_uri=item.uri,
            draft_fields={
                "source": item.source,
                "uri": item.uri,
                "version": stored_version(item.version, self.parser.tag(parsed.ocr_inputs > 0)),
                "title": title,
                "mime": item.mime,
                "meta": dict(item.metadata),
                "tenant": tenant,
                "principals": principals,
                "namespace": self.options.namespace,
                "text": doc_text,
                "size_bytes": len(data),
                "pii_counts": counts,
            },
            chunks=[
                (
                    c.ordinal,
                    c.text,
                    c.section,
                    c.page,
                    c.char_start,
                    c.char_end,
                    c.token_count,
                    looks_like_instructions(c.text),
                    c.ocr,
                )
                for c in chunks
            ],
            embed_texts=embed_texts,
            hashes=[text_hash(t) for t in embed_texts],
            is_update=is_update,
            ocr_pages=parsed.ocr_pages,
            ocr_seconds=parsed.ocr_seconds,
        )

    def prepare_safely(self, item: ItemLike, is_update: bool) -> Prepared | ItemError:
        """``prepare``, with every per-item failure turned into the item's error."""
        try:
            return self.prepare(item, is_update)
        except Exception as exc:  # one file's failure must not stop the run
            return problem(item.uri, exc)


def text_hash(embedded: str) -> str:
    """What a chunk's vector is reused by: a hash of the text it is embedded as."""
    return hashlib.sha256(embedded.encode("utf-8", "surrogatepass")).hexdigest()


def read_within(item: ItemLike, limit: int) -> bytes:
    """The item's bytes, or ``DocumentTooLargeError`` (by its stated size before reading)."""

    def check(size: int | None) -> None:
        if size is not None and size > limit:
            raise DocumentTooLargeError(
                f"{size:,} bytes is over the {limit:,}-byte limit (RAGSTACK_MAX_FILE_BYTES)"
            )

    check(item.size)
    data = item.read()
    check(len(data))
    return data


def problem(uri: str, exc: Exception) -> ItemError:
    """What went wrong with one item, as the ingest summary reports it."""
    if isinstance(exc, RagstackError):
        return ItemError(uri, error_kind(exc), str(exc))
    if isinstance(exc, OSError | UnicodeError):
        return ItemError(uri, "read_error", f"{type(exc).__name__}: {exc}")
    log.exception("unexpected error preparing %s", uri)  # a bug: its trace in the log
    return ItemError(uri, "parse_error", f"could not be processed ({type(exc).__name__})")


Executor = Callable[[Preparer, Iterable[tuple[ItemLike, bool]]], Iterable["Prepared | ItemError"]]


def run_here(
    preparer: Preparer, todo: Iterable[tuple[ItemLike, bool]]
) -> Iterable[Prepared | ItemError]:
    """The default executor: prepare each item in this process, in order; with
    ``prepare_workers`` above one, that many at once in threads (results still in order, at
    most twice that many in flight): documents waiting on OCR overlap."""
    workers = preparer.options.prepare_workers
    if workers <= 1:
        yield from (preparer.prepare_safely(item, is_update) for item, is_update in todo)
        return
    from collections import deque

    with ThreadPoolExecutor(workers, thread_name_prefix="ragstack-prepare") as pool:
        flight: deque[Future[Prepared | ItemError]] = deque()
        for item, is_update in todo:
            flight.append(pool.submit(preparer.prepare_safely, item, is_update))
            if len(flight) >= 2 * workers:
                yield flight.popleft().result()
        while flight:
            yield flight.popleft().result()
