"""The MCP tools over the service: ``search``, ``ask``, ``list_collections``, ``get_document``.

Each takes an ``Actor`` (who calls: principals, tenant, whether an admin, and how to audit)
and returns what the REST routes would, shaped the same way (``ragstack.api.public``: public
``d_``/``c_`` ids, per-stage timings for admins only): a hidden collection, document or chunk
is exactly as missing as one that does not exist. Every call is audited. No MCP import here:
the transports (``ragstack.mcp.server``) wrap these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from ragstack.answering import AnswerRequest
from ragstack.api import public
from ragstack.api.errors import status_of
from ragstack.api.models import ChunkOut, HitOut
from ragstack.errors import InputError, NotFoundError
from ragstack.publicids import PublicIds
from ragstack.service import Ragstack

AuditFn = Callable[..., None]  # (route, action, status, *, collection, query, chunk_ids, detail)
ROUTE = "/mcp"
MAX_CHUNKS = 200  # of a document, in one get_document


@dataclass(frozen=True)
class Actor:
    principals: tuple[str, ...]
    tenant: str | None
    admin: bool
    audit: AuditFn


class SearchResult(BaseModel):
    collection: str
    query: str
    hits: list[HitOut] = Field(description="chunk_id: get_document reads it with its span.")


class Citation(BaseModel):
    number: int
    chunk_id: str
    document_id: str
    uri: str
    title: str
    page: int | None = None
    char_start: int
    char_end: int
    supported: bool


class Answer(BaseModel):
    answer: str
    query: str = Field(description="What was searched (PII-redacted).")
    abstained: bool
    citations: list[Citation]
    references: list[str] = Field(description="[n] title (uri), for each numbered source.")


class Collection(BaseModel):
    name: str
    documents: int = Field(description="Documents the caller may read.")
    created_at: str


class Collections(BaseModel):
    collections: list[Collection]


class Document(BaseModel):
    id: str
    uri: str
    title: str
    mime: str
    chunk_count: int
    updated_at: str
    chunks: list[ChunkOut] = Field(description="The chunk asked for, or the document's chunks.")
    truncated: bool = Field(False, description="More chunks than one call returns.")


def _reference(source: dict[str, Any]) -> str:
    return f"[{source['number']}] {source['title'] or source['uri']} ({source['uri']})"


class Tools:
    """The four tools for any transport; ``svc`` and ``ids`` are the API's."""

    def __init__(self, svc: Ragstack, ids: PublicIds) -> None:
        self.svc, self.ids = svc, ids

    def _audited(
        self, who: Actor, action: str, work: Callable[[], tuple[Any, dict[str, Any]]], **fields: Any
    ) -> Any:
        """``work()`` -> ``(result, audit fields)``; audited as ``mcp_<action>`` either way."""
        try:
            result, more = work()
        except Exception as exc:
            who.audit(ROUTE, f"mcp_{action}", status_of(exc), **fields)
            raise
        who.audit(ROUTE, f"mcp_{action}", 200, **{**fields, **more})
        return result

    def search(
        self,
        who: Actor,
        collection: str,
        query: str,
        top_k: int = 10,
        mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
    ) -> SearchResult:
        def work() -> tuple[SearchResult, dict[str, Any]]:
            if not 1 <= top_k <= 50:
                raise InputError("top_k must be between 1 and 50")
            self.svc.visible_collection(collection, who.principals, who.tenant)
            found = self.svc.search(collection, query, principals=who.principals,
                                    tenant=who.tenant, mode=mode, top_k=top_k)  # fmt: skip
            hits = found.hit_dicts()
            shaped = [HitOut(**public.hit(self.ids, h)) for h in hits]
            out = SearchResult(collection=collection, query=query, hits=shaped)
            return out, {"chunk_ids": [h["chunk_id"] for h in hits]}

        result: SearchResult = self._audited(who, "search", work, collection=collection,
                                             query=query)  # fmt: skip
        return result

    def ask(self, who: Actor, collection: str, question: str) -> Answer:
        def work() -> tuple[Answer, dict[str, Any]]:
            self.svc.visible_collection(collection, who.principals, who.tenant)
            request = AnswerRequest(collection, question, who.principals, tenant=who.tenant)
            response = self.svc.ask(request)
            shaped = public.answer(self.ids, response.to_dict(), admin=who.admin)
            out = Answer(
                answer=shaped["answer"],
                query=shaped["query"],
                abstained=shaped["abstained"],
                citations=[Citation(**c) for c in shaped["citations"]],
                references=[_reference(s) for s in shaped["sources"]],
            )
            chunk_ids = [int(s["chunk_id"]) for s in response.sources]
            return out, {"chunk_ids": chunk_ids, "detail": {"cached": response.cached}}

        result: Answer = self._audited(who, "ask", work, collection=collection, query=question)
        return result

    def list_collections(self, who: Actor) -> Collections:
        def work() -> tuple[Collections, dict[str, Any]]:
            found = self.svc.visible_collections(who.principals, who.tenant)
            out = [Collection(name=info.name, documents=n, created_at=info.created_at.isoformat())
                   for info, n in found]  # fmt: skip
            return Collections(collections=out), {}

        result: Collections = self._audited(who, "list_collections", work)
        return result

    def get_document(self, who: Actor, collection: str, id: str) -> Document:
        """A chunk (``c_…``: with its document and its span in the document's text) or a
        document (``d_…``: with its chunks, the first ``MAX_CHUNKS``)."""

        def work() -> tuple[Document, dict[str, Any]]:
            svc, readers, tenant = self.svc, who.principals, who.tenant
            svc.visible_collection(collection, readers, tenant)
            if id.startswith("c_"):
                chunk, doc = svc.chunk(
                    collection, self.ids.chunk_id(id), principals=readers, tenant=tenant
                )
                chunks = [chunk]
            elif id.startswith("d_"):
                doc = svc.document(
                    collection, self.ids.document_id(id), principals=readers, tenant=tenant
                )
                chunks = svc.chunks(collection, doc.id, principals=readers, tenant=tenant)
            else:
                raise NotFoundError("no such document or chunk in this collection")
            shaped = public.document(self.ids, doc)
            out = Document(
                id=shaped["id"], uri=shaped["uri"], title=shaped["title"], mime=shaped["mime"],
                chunk_count=shaped["chunk_count"], updated_at=shaped["updated_at"],
                chunks=[ChunkOut(**public.chunk(self.ids, c)) for c in chunks[:MAX_CHUNKS]],
                truncated=len(chunks) > MAX_CHUNKS,
            )  # fmt: skip
            return out, {"chunk_ids": [c.id for c in chunks[:MAX_CHUNKS]]}

        result: Document = self._audited(who, "get_document", work, collection=collection,
                                         detail={"id": id})  # fmt: skip
        return result
