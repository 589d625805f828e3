"""``Ragstack``: the one service layer. The CLI, the API, the admin page and the evals call it
with domain types; it never sees a request object, an HTTP status or a CLI exit code."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from indexes import IdFilter
from ragstack.answering import AnswerEvent, AnswerRequest, AnswerResponse, MemoEmbed, source_dicts
from ragstack.cache import SemanticCache, scope_key
from ragstack.citations import CitationVerifier
from ragstack.compression import F32, Compressor, Context
from ragstack.config import Settings
from ragstack.domain import PUBLIC, ChunkInfo, CollectionInfo, DocumentInfo, check_principal
from ragstack.embedding import Embedder
from ragstack.errors import ConfigError, ConflictError, InputError, NotFoundError
from ragstack.evaluation import (
    Qrels,
    Reranked,
    RerankTuneResult,
    TuneResult,
    doc_key,
    tune,
    tune_rerank,
)
from ragstack.generation.base import Generator, Source, TextDelta, Usage
from ragstack.indexing import (
    CheckReport,
    CollectionIndexes,
    ReconcileReport,
    collection_lock,
    drop_indexes,
    in_database,
    index_bytes,
)
from ragstack.ingest.chunking import Chunker
from ragstack.ingest.pipeline import (
    IngestOptions,
    Ingestor,
    IngestSummary,
    ItemError,
    ItemLike,
    NoProgress,
    Parser,
    Progress,
    Redactor,
    default_principals,
)
from ragstack.redaction import MODES as PII_MODES
from ragstack.rerank import Reranker, reranker_identity
from ragstack.search import (
    MODES,
    Filters,
    Fusion,
    Hit,
    Mode,
    blended_order,
    hydrate,
    permitted_chunks,
    permitted_query,
    retrieve,
)
from ragstack.store import Store, index_text
from ragstack.store.pgindex import SqlAllow


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


@dataclass(frozen=True)
class ResolvedSource:
    source_id: str
    items: Iterable[ItemLike | ItemError]
    total: int | None


SourceResolver = Callable[[SourceSpec, int], ResolvedSource]


def rerank_passages(hits: Sequence[Hit]) -> list[str]:
    """What the reranker reads of each hit: title and section as context, then the text."""
    return [index_text(" > ".join(x for x in (h.title, h.section) if x), h.text) for h in hits]


def rerank_hits(
    reranker: Reranker, query: str, hits: list[Hit], depth: int, fusion: Fusion
) -> list[Hit]:
    """The first ``depth`` hits reordered by the reranker's score, blended with their first-
    stage score by the fusion's ``rerank_weight`` (``blend``); the rest keep their order after
    them. Each reranked hit's ``ranks["rerank"]`` is its rank by the reranker alone. A weight
    of 0 (tuned so where the reranker does not help) leaves the hits as they are, unscored."""
    weight = fusion.rerank_weight_for(reranker_identity(reranker))
    if weight <= 0.0:
        return hits
    head, tail = hits[:depth], hits[depth:]
    scores = reranker.rerank(query, rerank_passages(head))
    by_model = sorted(range(len(head)), key=lambda i: -scores[i])
    model_rank = {i: r for r, i in enumerate(by_model, 1)}
    order, final = blended_order([h.score for h in head], scores, weight)
    return [
        replace(head[i], score=final[i], ranks={**head[i].ranks, "rerank": model_rank[i]})
        for i in order
    ] + tail


class _Clock:
    """Per-stage timings in milliseconds."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = (now - self.last) * 1000
        self.last = now

    def since_start(self) -> float:
        return (time.perf_counter() - self.start) * 1000

    def done(self) -> dict[str, float]:
        return {**self.laps, "total_ms": self.since_start()}


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


@dataclass
class Components:
    """What the composition root builds for the service."""

    embedder: Embedder
    chunker: Chunker
    parser: Parser
    redactor_for: Callable[[CollectionInfo, str], Redactor]  # (collection, salt) -> redactor
    resolve_source: SourceResolver
    generator_for: Callable[[str], Generator] | None = None  # by name, built lazily
    reranker: Reranker | None = None
    memo: MemoEmbed | None = None
    extras: dict[str, object] = field(default_factory=dict)


class Ragstack:
    def __init__(self, settings: Settings, store: Store, components: Components) -> None:
        self.settings = settings
        self.store = store
        self.c = components
        self._readers: dict[int, tuple[int, CollectionIndexes]] = {}
        self._group_maps: dict[tuple[int, int, str], dict[int, str]] = {}
        self._allowed: OrderedDict[tuple[object, ...], IdFilter | SqlAllow] = OrderedDict()
        self._lock = threading.RLock()
        self._files = not in_database(store)  # indexes in files (SQLite) or in the database
        self._redactors: dict[tuple[int, str, bool], Redactor] = {}

    # -- collections ------------------------------------------------------------------------

    def collection_dir(self, info: CollectionInfo) -> Path:
        return self.settings.collections_dir / f"{info.id:06d}-{info.name}"

    def create_collection(
        self,
        name: str,
        *,
        owner: str,
        public: bool = False,
        allow: Sequence[str] = (),
        tenant: str | None = None,
        vector_backend: str | None = None,
        pii_mode: str | None = None,
        pii_ner: bool | None = None,
    ) -> CollectionInfo:
        _check_name(name)
        check_principal(owner)
        for p in allow:
            check_principal(p)
        if pii_mode is not None and pii_mode not in PII_MODES:
            raise InputError(f"unknown PII mode {pii_mode!r}: use one of {', '.join(PII_MODES)}")
        embedder = self.c.embedder
        return self.store.create_collection(
            name=name,
            owner=owner,
            tenant=tenant,
            embedder_id=embedder.model_id,
            dim=embedder.dim,
            vector_backend=vector_backend or self.settings.vector_backend,
            pii_mode=pii_mode or self.settings.pii_mode,
            pii_ner=self.settings.pii_ner if pii_ner is None else pii_ner,
            default_acl=sorted(
                default_principals(owner, public=public, allow=allow, collection_default=())
            ),
        )

    def collections(self) -> list[CollectionInfo]:
        return self.store.list_collections()

    def collection(self, name: str) -> CollectionInfo:
        return self.store.get_collection(name)

    def collection_figures(self) -> dict[str, dict[str, Any]]:
        """Operator figures of every collection (for admins and metrics only: they span every
        document): see ``_figures``."""
        return {info.name: self._figures(info) for info in self.store.list_collections()}

    def _figures(self, info: CollectionInfo) -> dict[str, Any]:
        """Documents, chunks, embedder, generation, index bytes and ingest runs by status."""
        root = self.collection_dir(info)
        docs, chunks = self.store.count_documents(info.id)
        return {
            "collection": info.name,
            "documents": docs,
            "chunks": chunks,
            "embedder": info.embedder_id,
            "vector_backend": info.vector_backend,
            "generation": info.generation,
            "index_bytes": index_bytes(self.store, info, root),
            "runs": self.store.run_counts(info.id),
        }

    def collection_health(self, name: str, *, recall_sample: int = 50) -> dict[str, Any]:
        """Everything the admin page shows for one collection (admin only: it spans every
        document): ``_figures`` plus freshness, failures, PII, flags, cache, latency and ANN
        recall."""
        from ragstack import health

        info = self.store.get_collection(name)
        pii, flagged = health.pii_and_flags(self.store, info.id)
        cache = self.cache_stats(name)
        lookups = cache.get("lookups", 0)
        return {
            **self._figures(info),
            "ingest_by_source": health.ingest_by_source(self.store, info.id),
            "failed_files": health.failed_files(self.store, info.id),
            "pii_counts": pii,
            "instruction_like_chunks": flagged,
            "cache": {
                **cache,
                "hit_rate": round(cache.get("hits", 0) / lookups, 4) if lookups else None,
            },
            "latency": health.latency_series(self.store, name),
            "ann": health.ann_recall(
                self.store, self._reader(info).dense, info.id, info.dim, sample=recall_sample
            ),
        }

    def reindex(self, name: str) -> dict[str, int]:
        """Rebuilds the collection's dense and BM25 indexes from SQL (the source of truth)."""
        info = self.store.get_collection(name)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            drop_indexes(self.store, info, root)
            indexes, report = self.open_indexes(info)
            indexes.save()
            self.store.bump_generation(info.id)
        return {"dense": report.dense_added, "bm25": report.lexical_added}

    def visible_collections(
        self, principals: Sequence[str], tenant: str | None = None
    ) -> list[tuple[CollectionInfo, int]]:
        """``(collection, documents the caller may read)`` for every collection it can see
        (``_sees``)."""
        readable = self.store.readable_documents(principals, tenant)
        out = []
        for info in self.store.list_collections():
            count = readable.get(info.id, 0)
            seen = _sees(info, principals, tenant)
            if seen or (seen is None and count):
                out.append((info, count))
        return out

    def visible_collection(
        self, name: str, principals: Sequence[str], tenant: str | None = None
    ) -> CollectionInfo:
        """The collection, or the very ``NotFoundError`` a missing one gives when the caller
        cannot see it (so its existence is not revealed). One EXISTS, no counting: every API
        search calls it."""
        info = self.store.get_collection(name)
        seen = _sees(info, principals, tenant)
        if seen or (seen is None and self.store.can_read_any(info.id, principals, tenant)):
            return info
        raise NotFoundError(f"no collection named {name!r}")

    def delete_collection(self, name: str) -> None:
        info = self.store.get_collection(name)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            self.store.delete_collection(name)
            drop_indexes(self.store, info, root)
        (root / ".lock").unlink(missing_ok=True)
        root.rmdir() if root.exists() and not any(root.iterdir()) else None

    def _check_embedder(self, info: CollectionInfo) -> None:
        e = self.c.embedder
        if info.embedder_id != e.model_id or info.dim != e.dim:
            raise ConflictError(
                f"collection {info.name!r} is pinned to embedder {info.embedder_id} "
                f"(dim {info.dim}); this ragstack is configured with {e.model_id} (dim {e.dim}). "
                "Use the same embedder, or re-create the collection."
            )

    def open_indexes(
        self, info: CollectionInfo, *, repair: bool = True
    ) -> tuple[CollectionIndexes, ReconcileReport]:
        """The collection's indexes, reconciled with SQL unless ``repair`` is off."""
        return CollectionIndexes.open(self.collection_dir(info), info, self.store, repair=repair)

    # -- ingest -----------------------------------------------------------------------------

    def ingest(
        self, request: IngestRequest, *, principal: str, progress: Progress | None = None
    ) -> IngestSummary:
        check_principal(principal)
        for p in request.allow:
            check_principal(p)
        if not request.sources:
            raise InputError("nothing to ingest: give at least one path or URL")
        if request.executor not in ("local", "ray"):
            raise InputError(f"executor must be local or ray, not {request.executor!r}")
        try:
            info = self.store.get_collection(request.collection)
        except NotFoundError:
            info = self.create_collection(
                request.collection,
                owner=principal,
                public=request.public,
                allow=request.allow,
                tenant=request.tenant,
                pii_mode=request.pii_mode,
                pii_ner=request.pii_ner,
            )
        self._check_embedder(info)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            self.store.mark_interrupted_runs(info.id)
            indexes, recovered = self.open_indexes(info)
            resolved = [
                self.c.resolve_source(s, self.settings.max_file_bytes) for s in request.sources
            ]
            run_id = self.store.start_run(info.id, principal, [r.source_id for r in resolved])
            principals = (
                default_principals(
                    principal, public=request.public, allow=request.allow, collection_default=()
                )
                if (request.public or request.allow)
                else frozenset(info.default_acl)
            )
            salt = self.store.pii_salt(info.name)
            options = IngestOptions(
                principals=principals,
                tenant=request.tenant or info.tenant,
                max_file_bytes=self.settings.max_file_bytes,
                batch_chunks=max(self.settings.embed_batch_size * 4, 64),
                save_interval_s=self.settings.index_save_interval_s,
                delete_missing=request.delete_missing,
            )
            executor = None
            if request.executor == "ray":
                from ragstack.ingest.ray_executor import RayExecutor

                executor = RayExecutor(
                    self.settings, info, salt, options, address=request.ray_address
                )
            ingestor = Ingestor(
                self.store,
                info,
                indexes,
                self.c.embedder,
                self.c.chunker,
                self.c.parser,
                self.c.redactor_for(info, salt),
                options,
                executor,
            )
            total = (
                sum(r.total for r in resolved if r.total is not None)
                if all(r.total is not None for r in resolved)
                else None
            )
            items = _chain(r.items for r in resolved)
            try:
                summary = ingestor.run(
                    items, [r.source_id for r in resolved], run_id, progress or NoProgress(), total
                )
            except BaseException:
                self.store.finish_run(run_id, "failed", {})
                raise
            summary.recovered = {
                "dense_added": recovered.dense_added,
                "dense_removed": recovered.dense_removed,
                "lexical_added": recovered.lexical_added,
                "lexical_removed": recovered.lexical_removed,
            }
            self.store.record_errors(
                run_id, info.id, [(p.uri, p.kind, p.reason) for p in summary.problems]
            )
            self.store.finish_run(run_id, "completed", summary.counts())
        return summary

    # -- documents --------------------------------------------------------------------------

    def documents(
        self,
        collection: str,
        *,
        limit: int = 100,
        offset: int = 0,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> list[DocumentInfo]:
        """A page of documents; with ``principals``, only those they may read."""
        info = self.store.get_collection(collection)
        return self.store.list_documents(
            info.id, limit=limit, offset=offset, readers=principals, tenant=tenant
        )

    def document(
        self,
        collection: str,
        document_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> DocumentInfo:
        """One document; with ``principals``, only one they may read (else not found)."""
        info = self.store.get_collection(collection)
        return self.store.get_document(info.id, document_id, readers=principals, tenant=tenant)

    def chunks(
        self,
        collection: str,
        document_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> list[ChunkInfo]:
        self.document(collection, document_id, principals=principals, tenant=tenant)
        return self.store.list_chunks(document_id)

    def delete_document(
        self,
        collection: str,
        document_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> int:
        """Removes a document from SQL and every index; with ``principals``, only one they may
        read (else not found). Returns the chunks removed."""
        info = self.store.get_collection(collection)
        self.store.get_document(info.id, document_id, readers=principals, tenant=tenant)
        with collection_lock(self.store, info, self.collection_dir(info)):
            indexes, _ = self.open_indexes(info)
            removed = self.store.delete_documents(info.id, [document_id], index=indexes.sql_writer)
            import numpy as np

            indexes.apply(removed, np.empty(0, np.int64), np.empty((0, info.dim), np.float32), [])
            indexes.save()
        return int(removed.size)

    # -- search -----------------------------------------------------------------------------

    def fusion(self, collection: str) -> Fusion:
        """The collection's fusion settings (tuned by ``ragstack tune``, else the defaults)."""
        info = self.store.get_collection(collection)
        return Fusion.from_json(self.store.get_setting(info.id, "fusion"))

    def set_fusion(self, collection: str, fusion: Fusion) -> None:
        info = self.store.get_collection(collection)
        self.store.set_setting(info.id, "fusion", fusion.to_json())

    def search(
        self,
        collection: str,
        query: str,
        *,
        principals: Sequence[str],
        tenant: str | None = None,
        mode: Mode = "hybrid",
        top_k: int = 10,
        filters: Filters | None = None,
        fusion: Fusion | None = None,
        query_vector: F32 | None = None,
        rerank: bool | None = None,
    ) -> SearchResponse:
        """The best chunks for ``query`` among those ``principals`` may read; with ``rerank``
        (default ``RAGSTACK_RERANK_DEFAULT``) the first ``rerank_depth`` are reordered by the
        configured cross-encoder."""
        started = time.perf_counter()
        if mode not in MODES:
            raise InputError(f"mode must be bm25, dense or hybrid, not {mode!r}")
        if not 1 <= top_k <= 1000:
            raise InputError("top_k must be between 1 and 1000")
        if not query.strip():
            raise InputError("the query is empty")
        if len(query) > 4096:
            raise InputError("the query is longer than 4,096 characters")
        for p in principals:
            check_principal(p)
        info = self.store.get_collection(collection)
        self._check_embedder(info)
        filters = filters or Filters()
        fusion = fusion or Fusion.from_json(self.store.get_setting(info.id, "fusion"))
        indexes = self._reader(info)
        allow = self._permitted(info, principals, tenant, filters)
        t_allow = time.perf_counter()
        qvec = query_vector
        if qvec is None and mode != "bm25":  # a repeated query costs no model call
            qvec = (self.c.memo or self.c.embedder.embed)([query])
        t_embed = time.perf_counter()
        use_rerank = self.settings.rerank_default if rerank is None else rerank
        reranker = self.reranker() if use_rerank else None
        depth = max(top_k, self.settings.rerank_depth) if use_rerank else top_k
        retrieved = retrieve(
            indexes,
            self.c.embedder,
            query,
            allow,
            mode=mode,
            top_k=depth,
            fusion=fusion,
            query_vector=qvec,
            group_of=self._groups(info, fusion.group_by) if fusion.grouped else None,
        )
        t_retrieve = time.perf_counter()
        hits = hydrate(self.store, retrieved)
        t_hydrate = time.perf_counter()
        if reranker is not None and hits:
            hits = rerank_hits(reranker, query, hits, self.settings.rerank_depth, fusion)[:top_k]
        done = time.perf_counter()
        timings = {
            "acl_ms": (t_allow - started) * 1000,
            "embed_ms": (t_embed - t_allow) * 1000,
            "retrieve_ms": (t_retrieve - t_embed) * 1000,
            "hydrate_ms": (t_hydrate - t_retrieve) * 1000,
            **({"rerank_ms": (done - t_hydrate) * 1000} if use_rerank else {}),
            "total_ms": (done - started) * 1000,
        }
        return SearchResponse(hits, mode, fusion, info.generation, timings)

    def answer(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Stream an answer: text deltas as they are generated, then the ``AnswerResponse``
        (citations resolved and checked, sources, usage, cache outcome, per-stage timings)."""
        clock = _Clock()
        info = self._check_answer_request(request)
        name = request.generator or self.settings.generator
        if name not in ("extractive", "local", "remote") or self.c.generator_for is None:
            raise InputError(f"generator must be extractive, local or remote, not {name!r}")
        generator = self.c.generator_for(name)
        fusion = Fusion.from_json(self.store.get_setting(info.id, "fusion"))
        # cached and logged only redacted; retrieval sees the same text
        question = self._redactor(info).redact_many([request.question])[0].text
        memo = self.c.memo or MemoEmbed(self.c.embedder)
        cache = SemanticCache(self.store, threshold=self.settings.cache_threshold)
        reranking = self.settings.rerank_default if request.rerank is None else request.rerank
        scope = scope_key(
            request.principals,
            request.tenant,
            request.cache_params(
                name,
                generator.model_id,
                fusion.to_json(),
                reranker_identity(self.reranker()) if reranking else "",
            ),
        )
        use_cache = request.use_cache and self.settings.cache_enabled
        if use_cache:
            found = cache.lookup(
                info.id, info.generation, scope, question, lambda: memo([question])[0]
            )
            clock.lap("cache_ms")
            if found.outcome == "hit" and found.response is not None:
                cached = AnswerResponse.from_dict(found.response)
                cached.cached = True
                cached.cache = {"outcome": "hit", "similarity": round(found.similarity, 4)}
                cached.timings_ms = clock.done()
                yield TextDelta(cached.answer)
                yield cached
                return
            cache_info: dict[str, Any] = {
                "outcome": found.outcome,
                "similarity": round(found.similarity, 4),
            }
            if found.reason:
                cache_info["guard"] = found.reason
        else:
            cache_info = {"outcome": "off"}
        qvec = memo([question])
        clock.lap("embed_ms")
        hits = self.search(
            request.collection,
            question,
            principals=request.principals,
            tenant=request.tenant,
            mode=request.mode,
            top_k=self.settings.answer_chunks,
            filters=request.filters,
            fusion=fusion,
            query_vector=qvec,
            rerank=reranking,
        ).hits
        clock.lap("search_ms")
        context, sources = self.compress(question, hits, generator, memo)
        clock.lap("compress_ms")
        parts: list[str] = []
        usage: Usage | None = None
        max_tokens = request.max_tokens or self.settings.answer_max_tokens
        first_token_ms: float | None = None
        for event in generator.stream(question, sources, max_tokens=max_tokens):
            if isinstance(event, TextDelta):
                if first_token_ms is None:
                    first_token_ms = clock.since_start()
                parts.append(event.text)
                yield event
            else:
                usage = event
        clock.lap("generate_ms")
        text = "".join(parts).strip()
        verification = CitationVerifier(memo).verify(text, context)
        clock.lap("verify_ms")
        response = AnswerResponse(
            answer=text,
            abstained=verification.abstained or not context.sources,
            generator=name,
            model=generator.model_id,
            sentences=list(verification.sentences),
            sources=source_dicts(context),
            context_tokens_before=context.tokens_before,
            context_tokens_after=context.tokens_after,
            usage=usage or Usage(0, 0, generator.model_id, estimated=True),
            cache=cache_info,
        )
        if use_cache:
            cache.put(info.id, info.generation, scope, question, qvec[0], response.to_dict())
        timings = clock.done()
        if first_token_ms is not None:
            timings["first_token_ms"] = first_token_ms
        response.timings_ms = timings
        yield response

    def compress(
        self,
        question: str,
        hits: Sequence[Hit],
        generator: Generator,
        memo: MemoEmbed | None = None,
    ) -> tuple[Context, list[Source]]:
        """The compressed context ``answer`` gives ``generator`` for these hits (within
        ``context_tokens`` of its own tokens), and the numbered sources it is shown."""
        memo = memo or self.c.memo or MemoEmbed(self.c.embedder)
        compressor = Compressor(
            memo, generator.count_tokens, budget_tokens=self.settings.context_tokens
        )
        context = compressor.compress(question, hits)
        sources = [
            Source(s.number, s.hit.title, s.text, s.hit.instruction_like) for s in context.sources
        ]
        return context, sources

    def redacted(self, collection: str, text: str) -> str | None:
        """``text`` through the collection's PII redactor (for logs and the audit trail);
        ``None`` when there is no such collection to take the redactor from."""
        try:
            info = self.store.get_collection(collection)
        except NotFoundError:
            return None
        return self._redactor(info).redact_many([text])[0].text

    def _redactor(self, info: CollectionInfo) -> Redactor:
        """A collection's redactor (its salt never changes), built once per process."""
        key = (info.id, info.pii_mode, info.pii_ner)
        with self._lock:
            found = self._redactors.get(key)
        if found is None:
            found = self.c.redactor_for(info, self.store.pii_salt(info.name))
            with self._lock:
                self._redactors[key] = found
        return found

    def _check_answer_request(self, request: AnswerRequest) -> CollectionInfo:
        if not request.question.strip():
            raise InputError("the question is empty")
        if len(request.question) > 4096:
            raise InputError("the question is longer than 4,096 characters")
        if not request.principals:
            raise InputError("an answer needs at least one principal to read as")
        for p in request.principals:
            check_principal(p)
        info = self.store.get_collection(request.collection)
        self._check_embedder(info)
        return info

    def ask(self, request: AnswerRequest) -> AnswerResponse:
        """``answer`` without the stream."""
        for event in self.answer(request):
            if isinstance(event, AnswerResponse):
                return event
        raise RuntimeError("the answer stream ended without a response")  # pragma: no cover

    def cache_stats(self, collection: str) -> dict[str, int]:
        info = self.store.get_collection(collection)
        return SemanticCache(self.store).stats(info.id)

    def clear_cache(self, collection: str) -> int:
        info = self.store.get_collection(collection)
        return SemanticCache(self.store).clear(info.id)

    def tune(
        self,
        collection: str,
        queries: Mapping[str, str],
        qrels: Qrels,
        *,
        principals: Sequence[str],
        tenant: str | None = None,
        candidates: int = 100,
        group_by: str = "",
        apply: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> TuneResult:
        """Picks the collection's fusion from judged queries (see ``ragstack.evaluation``) and,
        with ``apply``, stores it for every later search. With ``group_by`` (a document
        metadata key naming a parent), the weight of group evidence is tuned too."""
        info = self.store.get_collection(collection)
        self._check_embedder(info)
        judged = {q: t for q, t in queries.items() if q in qrels}
        if not judged:
            raise InputError("no query has a judgement: check that the ids match")
        indexes = self._reader(info)
        allow = self._permitted(info, principals, tenant, Filters())
        texts = list(judged.values())
        vectors = dict(zip(texts, self.c.embedder.embed(texts), strict=True))
        probe = Fusion(candidates=candidates)

        def candidates_for(text: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
            got = retrieve(
                indexes,
                self.c.embedder,
                text,
                allow,
                top_k=candidates,
                fusion=probe,
                query_vector=vectors[text],
            )
            return got.lexical, got.dense

        keys = {cid: doc_key(uri) for cid, uri in self.store.chunk_uris(info.id)}
        result = tune(
            candidates_for,
            keys.__getitem__,
            judged,
            qrels,
            candidates=candidates,
            group_by=group_by,
            group_of=self._groups(info, group_by) if group_by else None,
            progress=progress,
        )
        if apply:
            self.store.set_setting(info.id, "fusion", result.best.to_json())
        return result

    def reranker(self) -> Reranker:
        """The configured reranker, or a ``ConfigError`` saying how to configure one."""
        if self.c.reranker is None:
            raise ConfigError("reranking needs a cross-encoder: set RAGSTACK_RERANKER_PATH")
        return self.c.reranker

    def tune_rerank(
        self,
        collection: str,
        queries: Mapping[str, str],
        qrels: Qrels,
        *,
        principals: Sequence[str],
        tenant: str | None = None,
        fusion: Fusion | None = None,
        apply: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> RerankTuneResult:
        """Picks the reranker's share of a reranked hit's score (``Fusion.rerank_weight``)
        from judged queries, searched in hybrid mode with ``fusion`` (default: the
        collection's); with ``apply``, stores that fusion with the weight, for this reranker
        (``reranker_identity``). Use queries the reranker was not trained on."""
        reranker = self.reranker()
        judged = {q: t for q, t in queries.items() if q in qrels}
        if not judged:
            raise InputError("no query has a judgement: check that the ids match")
        depth = self.settings.rerank_depth
        fusion = fusion or self.fusion(collection)
        runs: dict[str, Reranked] = {}
        for i, (qid, text) in enumerate(judged.items(), 1):
            hits = self.search(
                collection,
                text,
                principals=principals,
                tenant=tenant,
                top_k=max(100, depth),
                fusion=fusion,
                rerank=False,
            ).hits
            head = hits[:depth]
            runs[qid] = Reranked(
                [doc_key(h.uri) for h in head],
                [h.score for h in head],
                reranker.rerank(text, rerank_passages(head)) if head else [],
                [doc_key(h.uri) for h in hits[depth:]],
            )
            if progress is not None:
                progress(i, len(judged))
        result = tune_rerank(runs, qrels)
        if apply:
            identity = reranker_identity(reranker)
            tuned = replace(fusion, rerank_weight=result.weight, rerank_model=identity)
            self.set_fusion(collection, tuned)
        return result

    def _reader(self, info: CollectionInfo) -> CollectionIndexes:
        with self._lock:
            cached = self._readers.get(info.id)
            if cached is None or cached[0] != info.generation:
                # readers of database indexes never reconcile: writers do, under the lock
                cached = (info.generation, self.open_indexes(info, repair=self._files)[0])
                self._readers[info.id] = cached
            return cached[1]

    def _groups(self, info: CollectionInfo, key: str) -> dict[int, str]:
        """Chunk id -> its document's ``key`` metadata value, cached per generation."""
        cache_key = (info.id, info.generation, key)
        with self._lock:
            found = self._group_maps.get(cache_key)
        if found is None:
            found = self.store.chunk_groups(info.id, key)
            with self._lock:
                self._group_maps = {k: v for k, v in self._group_maps.items() if k[0] != info.id}
                self._group_maps[cache_key] = found
        return found

    def _permitted(
        self,
        info: CollectionInfo,
        principals: Sequence[str],
        tenant: str | None,
        filters: Filters,
    ) -> IdFilter | SqlAllow:
        """The caller's permitted chunk ids, cached per collection generation (a committed
        change bumps it, so a stale set is never used). Indexes in the database take the
        permission query itself instead, and join it in the search's own SQL."""
        if not self._files:
            query = permitted_query(info.id, principals, tenant=tenant, filters=filters)
            if query is not None:
                return query
        key = (info.id, info.generation, frozenset(principals), tenant, filters)
        with self._lock:
            found = self._allowed.get(key)
            if found is not None:
                self._allowed.move_to_end(key)
                return found
        allow = permitted_chunks(self.store, info.id, principals, tenant=tenant, filters=filters)
        with self._lock:
            self._allowed[key] = allow
            while len(self._allowed) > 256:
                self._allowed.popitem(last=False)
        return allow

    # -- index health -----------------------------------------------------------------------

    def check_index(self, collection: str, *, repair: bool = True) -> CheckReport:
        """Prove SQL and every index of a collection agree (after the recovery any open does,
        unless ``repair`` is off)."""
        info = self.store.get_collection(collection)
        root = self.collection_dir(info)
        with collection_lock(self.store, info, root):
            if repair:
                indexes, recovered = self.open_indexes(info)
            else:
                indexes = (
                    _load_without_repair(root, info)
                    if self._files
                    else self.open_indexes(info, repair=False)[0]
                )
                recovered = ReconcileReport()
            return indexes.check(self.store, recovered)


def _sees(info: CollectionInfo, principals: Sequence[str], tenant: str | None) -> bool | None:
    """Whether a caller sees a collection: not outside its tenant (a collection of none is
    everyone's), yes as its owner or in its default ACL (``public`` counts for everyone);
    otherwise ``None``: it sees it if it may read one of its documents."""
    if tenant is not None and info.tenant not in (None, tenant):
        return False
    who = set(principals) | {PUBLIC}
    return True if info.owner in who or who & set(info.default_acl) else None


def _load_without_repair(root: Path, info: CollectionInfo) -> CollectionIndexes:
    from indexes import Bm25Index, CorruptIndexError, open_vector_index
    from ragstack.indexing import new_vector_index

    try:
        dense = open_vector_index(root / "dense", dim=info.dim, metric="cosine")
    except CorruptIndexError:
        dense = new_vector_index(info.vector_backend, info.dim)
    try:
        lexical = Bm25Index.load(root / "bm25")
    except CorruptIndexError:
        lexical = Bm25Index()
    return CollectionIndexes(root, info, dense, lexical)


def _chain(parts: Iterable[Iterable[ItemLike | ItemError]]) -> Iterable[ItemLike | ItemError]:
    for part in parts:
        yield from part


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
        raise InputError(
            f"bad collection name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
