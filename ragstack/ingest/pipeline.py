"""The write path: source items -> parsed, redacted, chunked, embedded -> SQL + indexes.

Three stages overlap: a producer thread reads, parses, redacts and chunks documents; a model
thread embeds a batch of chunks (onnxruntime and torch release the GIL while they compute);
the calling thread commits the batch before it (SQL, then the indexes) meanwhile, in order.
Each commit is one SQL transaction per batch of documents, mirrored into the indexes right
after; the indexes are saved every ``index_save_interval_s`` and at the end. A kill at any
point loses at most the uncommitted batches: SQL stays consistent, and the next open of the
collection brings the indexes back in step with it.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from ragstack.domain import (
    PUBLIC,
    ChunkDraft,
    CollectionInfo,
    DocumentDraft,
    DocumentState,
    MetaValue,
)
from ragstack.embedding import Embedder, reuse_or_embed
from ragstack.errors import (
    DocumentTooLargeError,
    InputError,
    ParseError,
    RagstackError,
    UnsupportedDocumentError,
)
from ragstack.indexing import CollectionIndexes
from ragstack.ingest.chunking import Block, Chunker
from ragstack.ingest.safety import looks_like_instructions
from ragstack.parsing import ParsedDocument
from ragstack.redaction import Redaction
from ragstack.store import Store, index_text

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


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


# -- the pipeline -------------------------------------------------------------------------------


@dataclass
class _Prepared:
    item_uri: str
    draft_fields: dict[str, object]
    chunks: list[tuple[int, str, str, int | None, int, int, int, bool, bool]]
    embed_texts: list[str]
    hashes: list[str]
    is_update: bool
    vectors: list[F32 | None] = field(default_factory=list)
    ocr_pages: int = 0
    ocr_seconds: float = 0.0


@dataclass(frozen=True)
class _Vectors:
    """A batch's vectors by chunk text hash, filled on the model thread until ``done``."""

    done: Future[None]
    vectors: dict[str, F32]
    hashes: frozenset[str]  # what ``vectors`` holds once done


# Nothing wrong with these files: they hold nothing to index (yet: OCR may be installed later).
_SKIP_KINDS = ("unsupported", "empty", "no_text", "ocr_unavailable", "ocr_language_missing")
_PARSE_REASONS = (
    "empty",
    "corrupt",
    "password-protected",
    "no-text",
    "ocr-unavailable",
    "ocr-language-missing",
)
_DONE = object()


def _kind(exc: RagstackError) -> str:
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


@dataclass(frozen=True)
class _AclChange:
    """An item whose content is unchanged and whose ACL or tenant is not."""

    document_id: int
    principals: frozenset[str]
    tenant: str | None


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

    def prepare(self, item: ItemLike, is_update: bool) -> _Prepared:
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
        return _Prepared(
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

    def prepare_safely(self, item: ItemLike, is_update: bool) -> _Prepared | ItemError:
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
        return ItemError(uri, _kind(exc), str(exc))
    if isinstance(exc, OSError | UnicodeError):
        return ItemError(uri, "read_error", f"{type(exc).__name__}: {exc}")
    log.exception("unexpected error preparing %s", uri)  # a bug: its trace in the log
    return ItemError(uri, "parse_error", f"could not be processed ({type(exc).__name__})")


Executor = Callable[[Preparer, Iterable[tuple[ItemLike, bool]]], Iterable["_Prepared | ItemError"]]


def run_here(
    preparer: Preparer, todo: Iterable[tuple[ItemLike, bool]]
) -> Iterable[_Prepared | ItemError]:
    """The default executor: prepare each item in this process, in order; with
    ``prepare_workers`` above one, that many at once in threads (results still in order, at
    most twice that many in flight): documents waiting on OCR overlap."""
    workers = preparer.options.prepare_workers
    if workers <= 1:
        yield from (preparer.prepare_safely(item, is_update) for item, is_update in todo)
        return
    from collections import deque

    with ThreadPoolExecutor(workers, thread_name_prefix="ragstack-prepare") as pool:
        flight: deque[Future[_Prepared | ItemError]] = deque()
        for item, is_update in todo:
            flight.append(pool.submit(preparer.prepare_safely, item, is_update))
            if len(flight) >= 2 * workers:
                yield flight.popleft().result()
        while flight:
            yield flight.popleft().result()


class Ingestor:
    """Runs one ingest of source items into one collection (the caller holds the writer lock)."""

    def __init__(
        self,
        store: Store,
        info: CollectionInfo,
        indexes: CollectionIndexes,
        embedder: Embedder,
        chunker: Chunker,
        parser: Parser,
        redactor: Redactor,
        options: IngestOptions,
        executor: Executor | None = None,
        shadow: Embedder | None = None,
    ) -> None:
        self.store = store
        # the model a live re-embed is moving the collection to: new chunks get its vectors
        # too, in the same transaction (``chunk_vectors``)
        self.shadow = shadow
        self.info = info
        self.indexes = indexes
        self.embedder = embedder
        self.chunker = chunker
        self.parser = parser
        self.redactor = redactor
        self.options = options
        self.preparer = Preparer(parser, redactor, chunker, options)
        self.executor: Executor = executor or run_here

    # producer side ----------------------------------------------------------------------------

    def _triage(self, item: ItemLike, prior: DocumentState | None) -> object | None:
        """What to do with an item, short of preparing it: ``None`` (prepare it), or the
        message that settles it (unchanged, an ACL change, or refused)."""
        if prior is None:
            return None
        asker = self.options.replaces_only_readable
        if asker is not None and not prior.readable_by(*asker):
            return ItemError(
                item.uri,
                "permission_denied",
                "not replaced: you may not read the document it would replace",
            )
        if not is_unchanged(prior.version, item.version, self.parser):
            return None
        principals, tenant = self.options.acl_of(item)
        if (principals, tenant) == (prior.principals, prior.tenant):
            return ("unchanged", item.uri)
        return _AclChange(prior.id, principals, tenant)

    def _produce(
        self,
        items: Iterable[ItemLike | ItemError],
        known: dict[str, DocumentState],
        out: queue.Queue[object],
        seen: set[str],
        stop: threading.Event,
    ) -> None:
        def todo() -> Iterator[tuple[ItemLike, bool]]:
            for item in items:
                if stop.is_set():
                    return
                seen.add(item.uri)
                if isinstance(item, ItemError):
                    out.put(item)
                    continue
                prior = known.get(item.uri)
                settled = self._triage(item, prior)
                if settled is not None:
                    out.put(settled)
                    continue
                yield item, prior is not None

        try:
            for prepared in self.executor(self.preparer, todo()):
                out.put(prepared)
        except BaseException as exc:  # a connector failed as a whole: stop, keep what we have
            out.put(exc)
        finally:
            out.put(_DONE)

    # consumer side ----------------------------------------------------------------------------

    def run(
        self,
        items: Iterable[ItemLike | ItemError],
        source_ids: Sequence[str],
        run_id: int,
        progress: Progress,
        total: int | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary(run_id=run_id, collection=self.info.name)
        # a document is its URI within the collection, whichever source found it first
        known = self.store.document_versions(self.info.id, self.options.namespace)
        seen: set[str] = set()
        q: queue.Queue[object] = queue.Queue(maxsize=64)
        stop = threading.Event()
        producer = threading.Thread(
            target=self._produce,
            args=(items, known, q, seen, stop),
            name="ragstack-ingest-producer",
            daemon=True,
        )
        progress.start(total)
        producer.start()
        scan_failed: BaseException | None = None
        try:
            scan_failed = self._consume(q, summary, progress)
            if scan_failed is None and self.options.delete_missing:
                self._delete_missing(known, set(source_ids), seen, summary)
        finally:
            stop.set()
            self.indexes.save()
            progress.finish()
            summary.seconds = time.perf_counter() - started
        if scan_failed is not None:
            if isinstance(scan_failed, RagstackError):
                raise scan_failed
            raise InputError(f"reading the source failed: {scan_failed}") from scan_failed
        return summary

    def _consume(
        self, q: queue.Queue[object], summary: IngestSummary, progress: Progress
    ) -> BaseException | None:
        """Drain the producer: embed and commit in batches; returns a whole-scan failure."""
        pending: list[_Prepared] = []
        acl_changes: list[_AclChange] = []
        last_save = time.monotonic()
        scan_failed: BaseException | None = None
        # the batch being embedded on the model thread, committed once the next one is started
        ahead: tuple[list[_Prepared], _Vectors] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="ragstack-embed") as model:

            def commit(batch: list[_Prepared] | None) -> None:
                """Start embedding ``batch``, then commit the batch embedded before it."""
                nonlocal ahead
                started = None
                if batch:
                    before = ahead[1] if ahead is not None else None
                    started = (batch, self._embed_start(batch, summary, model, before))
                if ahead is not None:
                    ahead[1].done.result()
                    self._commit(ahead[0], summary, progress)
                ahead = started

            while (msg := q.get()) is not _DONE:
                if isinstance(msg, BaseException):
                    scan_failed = msg
                elif isinstance(msg, _AclChange):
                    acl_changes.append(msg)
                elif isinstance(msg, _Prepared):
                    pending.append(msg)
                else:
                    self._settled(msg, summary, progress)
                idle = q.empty()
                if acl_changes and (idle or len(acl_changes) >= 500):
                    self._change_acls(acl_changes, summary, progress)
                    acl_changes = []
                if pending and (
                    idle or sum(len(p.chunks) for p in pending) >= self.options.batch_chunks
                ):
                    commit(pending)
                    pending = []
                if time.monotonic() - last_save >= self.options.save_interval_s:
                    self.indexes.save()
                    last_save = time.monotonic()
            if acl_changes:
                self._change_acls(acl_changes, summary, progress)
            commit(pending or None)
            commit(None)
        return scan_failed

    def _settled(self, msg: object, summary: IngestSummary, progress: Progress) -> None:
        """An item the producer settled without preparing it: a problem, or unchanged."""
        if isinstance(msg, ItemError):
            self._record_problem(summary, msg)
        else:
            summary.unchanged += 1
        progress.advance(1, 0)

    def _change_acls(
        self, changes: list[_AclChange], summary: IngestSummary, progress: Progress
    ) -> None:
        """New ACLs for unchanged content, one transaction: no parsing, no embedding."""
        self.store.set_acls(
            self.info.id, [(c.document_id, c.principals, c.tenant) for c in changes]
        )
        summary.acl_updated += len(changes)
        progress.advance(len(changes), 0)

    def _delete_missing(
        self,
        known: dict[str, DocumentState],
        sources: set[str],
        seen: set[str],
        summary: IngestSummary,
    ) -> None:
        """Documents these sources gave before and no longer have leave SQL and every index."""
        gone = [d.id for uri, d in known.items() if d.source in sources and uri not in seen]
        if gone:
            removed = self.store.delete_documents(self.info.id, gone, index=self.indexes.sql_writer)
            self.indexes.apply(
                removed, np.empty(0, np.int64), np.empty((0, self.info.dim), np.float32), []
            )
            summary.deleted = len(gone)

    def _record_problem(self, summary: IngestSummary, err: ItemError) -> None:
        summary.problems.append(err)
        if err.kind in _SKIP_KINDS:
            summary.skipped += 1
        else:
            summary.failed += 1

    def _embed_start(
        self,
        batch: list[_Prepared],
        summary: IngestSummary,
        model: ThreadPoolExecutor,
        before: _Vectors | None,
    ) -> _Vectors:
        """Reuse the vectors SQL has for the batch's chunk texts (looked up on this thread:
        the store is not shared) or that ``before`` (the previous batch's, not committed yet)
        gets, and embed the rest on the ``model`` thread, which runs one batch after another:
        what is done when every chunk of the batch has its vector."""
        done = [p for p in batch if len(p.vectors) == len(p.hashes)]  # embedded by a worker
        summary.chunks_embedded += sum(len(p.hashes) for p in done)
        batch = [p for p in batch if len(p.vectors) != len(p.hashes)]
        known: dict[str, F32] = {}
        todo: dict[str, str] = {}
        if batch:
            hashes = {h for p in batch for h in p.hashes}
            stored = self.store.vectors_for_hashes(
                self.info.id, hashes, model_id=self.embedder.model_id
            )
            known = {h: np.frombuffer(v, dtype=np.float32) for h, v in stored.items()}
            for p in batch:
                for h, t in zip(p.hashes, p.embed_texts, strict=True):
                    if h not in known:
                        todo.setdefault(h, t)
            fresh = sum(1 for h in todo if before is None or h not in before.hashes)
            summary.chunks_embedded += fresh
            summary.chunks_reused += sum(len(p.hashes) for p in batch) - fresh

        def run() -> None:  # after ``before``'s: its vectors are all there
            new = {h: t for h, t in todo.items() if before is None or h not in before.vectors}
            if before is not None:
                known.update((h, before.vectors[h]) for h in todo if h in before.vectors)
            if new:
                known.update(zip(new, self.embedder.embed(list(new.values())), strict=True))
            for p in batch:
                p.vectors = [known[h] for h in p.hashes]

        holds = frozenset(known) | frozenset(todo)  # before ``run`` starts to add to ``known``
        return _Vectors(model.submit(run), known, holds)

    def _shadow_vectors(self, batch: list[_Prepared]) -> tuple[str, list[F32]] | None:
        """The batch's chunks under the re-embed's model (reused by text hash), in order."""
        if self.shadow is None:
            return None
        from ragstack.store.shadow import ShadowStore

        model_id = self.shadow.model_id
        hashes = [h for p in batch for h in p.hashes]
        known, _ = reuse_or_embed(
            self.shadow.embed,
            ShadowStore(self.store).reusable(self.info.id, model_id, hashes),
            [(h, t) for p in batch for h, t in zip(p.hashes, p.embed_texts, strict=True)],
        )
        return model_id, [known[h] for h in hashes]

    def _commit(self, batch: list[_Prepared], summary: IngestSummary, progress: Progress) -> None:
        """Write an embedded batch: one SQL transaction, then the indexes."""
        drafts = []
        for p in batch:
            chunks = [
                ChunkDraft(
                    ordinal=o,
                    text=t,
                    text_hash=h,
                    section=s,
                    page=pg,
                    char_start=a,
                    char_end=b,
                    token_count=n,
                    instruction_like=flag,
                    embedding=np.asarray(v, dtype=np.float32),
                    ocr=ocr,
                )
                for (o, t, s, pg, a, b, n, flag, ocr), h, v in zip(
                    p.chunks, p.hashes, p.vectors, strict=True
                )
            ]
            drafts.append(DocumentDraft(**p.draft_fields, chunks=chunks))  # type: ignore[arg-type]
        results = self.store.write_documents(
            self.info.id, drafts, index=self.indexes.sql_writer, shadow=self._shadow_vectors(batch)
        )
        if not self.indexes.transactional:  # index files follow the commit
            removed = np.concatenate([r.removed for r in results])
            added = np.concatenate([r.added for r in results])
            vectors = np.stack([c.embedding for d in drafts for c in d.chunks])
            texts = [t for p in batch for t in p.embed_texts]
            self.indexes.apply(removed, added, vectors, texts)
        for p in batch:
            if p.is_update:
                summary.updated += 1
            else:
                summary.ingested += 1
            summary.chunks += len(p.chunks)
            summary.ocr_pages += p.ocr_pages
            summary.ocr_seconds += p.ocr_seconds
        progress.advance(len(batch), sum(len(p.chunks) for p in batch))


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


ParserFactory = Callable[[], Parser]
