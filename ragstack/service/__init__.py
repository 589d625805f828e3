"""``Ragstack``: the one service layer. The CLI, the API, the pages, the MCP server and the
evals call it with domain types; it never sees a request object, an HTTP status or a CLI exit
code.

It is split by capability, one module each, over a shared core (``core.ServiceCore``: the
settings, the store, the components and the per-generation caches)::

    collections  create, list, see, delete, figures, health, index checks
    ingest       sources -> SQL and every index
    documents    list, read, delete, change a document's ACL
    querying     ACL-filtered search, fusion, reranking
    answers      retrieve, compress, generate, verify, cache
    tuning       fusion and rerank weights from judged queries
    reembed      move a collection to another embedding model, live
    adapt        fine-tune a collection's embedder on its own documents, adopt it live
"""

from __future__ import annotations

from ragstack.service.adapt import AdaptMixin, AdaptResult
from ragstack.service.answers import AnswersMixin
from ragstack.service.documents import DocumentsMixin
from ragstack.service.ingest import IngestMixin
from ragstack.service.querying import SearchMixin, rerank_hits, rerank_passages
from ragstack.service.tuning import TuningMixin
from ragstack.service.types import (
    Components,
    IngestRequest,
    ResolvedSource,
    SearchResponse,
    SourceResolver,
    SourceSpec,
    SqlQuery,
)


class Ragstack(IngestMixin, DocumentsMixin, AnswersMixin, TuningMixin, AdaptMixin):
    """Every capability of the service over one store (see the module docstring)."""


__all__ = [
    "AdaptResult",
    "Components",
    "IngestRequest",
    "Ragstack",
    "ResolvedSource",
    "SearchMixin",
    "SearchResponse",
    "SourceResolver",
    "SourceSpec",
    "SqlQuery",
    "rerank_hits",
    "rerank_passages",
]
