"""The routes: parse, call the service, audit, shape the response. Nothing else."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from ragstack.answering import AnswerRequest, AnswerResponse
from ragstack.api import public
from ragstack.api.deps import Admin, Caller, Reader, State, Writer
from ragstack.api.errors import error_body, status_of
from ragstack.api.models import (
    AnswerIn,
    AnswerOut,
    AuditOut,
    ChunkOut,
    CollectionIn,
    CollectionOut,
    DocumentAclIn,
    DocumentDetailOut,
    DocumentOut,
    HitOut,
    JobOut,
    KeyIn,
    KeyOut,
    NewKeyOut,
    SearchIn,
    SearchOut,
)
from ragstack.api.slots import Lease, Leased, StoppableStream
from ragstack.conversation import Turn
from ragstack.domain import CollectionInfo
from ragstack.errors import (
    AbortedError,
    DocumentTooLargeError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RagstackError,
)
from ragstack.generation.base import Cancel, TextDelta
from ragstack.ingest.uploads import (
    SIDECAR_SUFFIX,
    finish,
    kept_dir,
    namespace_digest,
    staging_dir,
)
from ragstack.jobs import JobInfo
from ragstack.search import Filters
from ragstack.service import IngestRequest, SourceSpec

MAX_ROW_ID = 2**63 - 1  # SQL's BIGINT: a larger id cannot exist, and cannot even be bound
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]  # internal ids: the admin page only
DocumentName = Annotated[
    str, PathParam(max_length=64, description="A document's public id (`d_` + 16 hex digits).")
]

health = APIRouter(tags=["health"])
query = APIRouter(prefix="/v1", tags=["query"])
collections = APIRouter(prefix="/v1", tags=["collections"])
admin = APIRouter(prefix="/v1", tags=["admin"])


# -- health -----------------------------------------------------------------------------------


@health.get("/healthz", summary="Liveness (no key)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", summary="Readiness: the database answers (no key)")
def readyz(api: State) -> JSONResponse:
    try:
        with api.svc.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any driver error means not ready
        return JSONResponse(error_body("unavailable", "the database does not answer", 503), 503)
    return JSONResponse({"status": "ready"})


@health.get(
    "/metrics",
    summary="Prometheus metrics (admin key)",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(who: Admin) -> PlainTextResponse:
    """An admin with a tenant gets its collections' figures only (the process-wide request,
    answer and token counters span every tenant)."""
    m = who.state.metrics
    return PlainTextResponse(m.render(who.key.tenant), media_type=m.content_type)


# -- search and answers -----------------------------------------------------------------------


# The query routes are ``async`` and hand the service call to the thread pool themselves: a
# plain ``def`` route costs a second hop to the pool to validate its response, and under load
# those hops contend for the GIL (measured: 130 -> 175 searches/s, p95 100 -> 80 ms on 2 cores).


@query.post("/search", summary="ACL-filtered hybrid search")
async def search(body: SearchIn, who: Reader) -> SearchOut:
    return await run_in_threadpool(run_search, body, who)


def run_search(body: SearchIn, who: Caller, route: str = "/v1/search") -> SearchOut:
    """A search as ``who`` (a key: the route's or a page's), audited as ``route``."""
    svc = who.state.svc
    with svc.store.pinned():  # the check, the search, the audit: one connection (PostgreSQL)
        try:
            svc.visible_collection(body.collection, who.principals, who.tenant)
            result = svc.search(
                body.collection,
                body.query,
                principals=who.principals,
                tenant=who.tenant,
                mode=body.mode,
                top_k=body.top_k,
                filters=body.filters.to_filters() if body.filters else None,
                rerank=body.rerank,
            )
        except Exception as exc:
            who.audit_failure(route, "search", exc, collection=body.collection, query=body.query)
            raise
        hits = result.hit_dicts()
        who.audit(route, "search", 200, collection=body.collection, query=body.query,
                  chunk_ids=[h["chunk_id"] for h in hits])  # fmt: skip
    return SearchOut(
        collection=body.collection,
        query=body.query,
        mode=result.mode,
        hits=[HitOut(**public.hit(who.state.ids, h)) for h in hits],
        timings_ms=public.timings(result.timings_ms, admin=who.key.allows("admin")),
    )


def _answered(who: Caller, body: AnswerIn, response: AnswerResponse, route: str) -> dict[str, Any]:
    who.state.metrics.answered(response)
    who.audit(route, "answer", 200, collection=body.collection, query=body.question,
              chunk_ids=[int(s["chunk_id"]) for s in response.sources],
              detail={"cached": response.cached, "abstained": response.abstained})  # fmt: skip
    return public.answer(who.state.ids, response.to_dict(), admin=who.key.allows("admin"))


Event = tuple[str, dict[str, Any]]  # ("delta", {"text"}) | ("answer", {...}) | ("error", {...})


@dataclass(frozen=True)
class AnswerStream:
    events: Iterator[Event]
    abandoned: Callable[[], None]  # audits the answer as aborted, unless it already was


def _answer(
    body: AnswerIn, who: Caller, route: str, cancel: Cancel
) -> dict[str, Any] | AnswerStream:
    """The answer as a dict, or (``body.stream``) its events. Errors before the first event
    raise here, so they become plain error responses."""
    svc = who.state.svc
    request = AnswerRequest(
        body.collection,
        body.question,
        tuple(who.principals),
        tenant=who.tenant,
        mode=body.mode,
        generator=body.generator,
        filters=body.filters.to_filters() if body.filters else Filters(),
        max_tokens=body.max_tokens,
        use_cache=body.use_cache,
        rerank=body.rerank,
        cancel=cancel,
        history=tuple(Turn(t.role, t.content) for t in body.history),
    )
    try:
        svc.visible_collection(body.collection, who.principals, who.tenant)
        if not body.stream:
            return _answered(who, body, svc.ask(request), route)
        events = svc.answer(request)
        first = next(events)
    except Exception as exc:
        who.audit_failure(route, "answer", exc, collection=body.collection,
                          query=body.question)  # fmt: skip
        raise

    audited = False

    def stream() -> Iterator[Event]:
        nonlocal audited
        try:
            for event in _chain(first, events):
                if isinstance(event, TextDelta):
                    yield "delta", {"text": event.text}
                else:
                    answered = _answered(who, body, event, route)
                    audited = True
                    yield "answer", answered
        except RagstackError as exc:
            audited = True
            who.audit_failure(route, "answer", exc, collection=body.collection)
            yield "error", error_body(exc.code, str(exc), status_of(exc))["error"]

    def abandoned() -> None:
        """The client left before the stream ended: audited as such (once)."""
        if not audited:
            left = AbortedError("the client left before the answer ended")
            who.audit_failure(route, "answer", left, collection=body.collection)

    return AnswerStream(stream(), abandoned)


def _leased_answer(
    body: AnswerIn, who: Caller, route: str, cancel: Cancel, lease: Lease
) -> dict[str, Any] | Leased[Event]:
    """``_answer`` holding ``lease`` until its work ends (on this thread, or with its stream)."""
    try:
        result = _answer(body, who, route, cancel)
    except BaseException:
        lease.release()
        raise
    if isinstance(result, dict):
        lease.release()
        return result
    return Leased(result.events, lease, cancel, on_finish=result.abandoned)


async def _generate(body: AnswerIn, who: Caller, route: str) -> dict[str, Any] | Leased[Event]:
    """The answer on a worker thread, in one of its generator's slots (``BusyError`` when
    they and their queue are full). If this request is cancelled (the timeout, a client gone)
    its work is told to stop, and the slot is free once it has."""
    name = body.generator or who.state.svc.settings.generator
    try:
        lease = await who.state.generations.slots(name).acquire()
    except RagstackError as exc:
        await run_in_threadpool(who.audit_failure, route, "answer", exc,
                                collection=body.collection, query=body.question)  # fmt: skip
        raise
    cancel = Cancel()
    try:
        return await run_in_threadpool(_leased_answer, body, who, route, cancel, lease)
    except BaseException:
        cancel.set()
        raise


def _streamed(content: Iterator[str], events: Leased[Event]) -> StoppableStream:
    return StoppableStream(content, events.stop, media_type="text/event-stream")


@query.post(
    "/answer",
    summary="A cited answer (JSON, or Server-Sent Events with stream: true)",
    response_model=AnswerOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def answer(body: AnswerIn, who: Reader) -> Any:
    result = await _generate(body, who, "/v1/answer")
    if isinstance(result, dict):
        return result
    return _streamed((_sse(name, data) for name, data in result), result)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


# -- collections ------------------------------------------------------------------------------


def _collection_out(info: CollectionInfo, documents: int, *, reads_all: bool) -> CollectionOut:
    """``generation`` moves with every write, hidden documents' too: shown only to a caller
    who may read every document of the collection."""
    return CollectionOut(
        name=info.name,
        documents=documents,
        embedder=info.embedder_id,
        vector_backend=info.vector_backend,
        generation=info.generation if reads_all else None,
        tenant=info.tenant,
        created_at=info.created_at.isoformat(),
    )


@collections.get("/collections", summary="Collections this key can see")
def list_collections(who: Reader) -> list[CollectionOut]:
    svc = who.state.svc
    totals = svc.store.document_counts()
    return [
        _collection_out(info, n, reads_all=n == totals.get(info.id, 0))
        for info, n in svc.visible_collections(who.principals, who.tenant)
    ]


@collections.post("/collections", status_code=201, summary="Create a collection (writer)")
def create_collection(body: CollectionIn, who: Writer) -> CollectionOut:
    route = "/v1/collections"
    try:
        info = who.state.svc.create_collection(
            body.name,
            owner=who.key.principal,
            public=body.public,
            allow=body.allow,
            tenant=who.tenant or None,  # "" (a key without a tenant) makes a tenant-less one
            vector_backend=body.vector_backend,
            pii_mode=body.pii_mode,
        )
    except Exception as exc:
        who.audit_failure(route, "collection_create", exc, collection=body.name)
        raise
    who.audit(route, "collection_create", 201, collection=body.name)
    return _collection_out(info, 0, reads_all=True)


@collections.delete(
    "/collections/{name}",
    status_code=204,
    summary="Delete a collection (admin, or the writer who owns it)",
)
def delete_collection(name: str, who: Writer) -> Response:
    route, svc = "/v1/collections/{name}", who.state.svc
    try:
        info = svc.collection(name)
        if not who.administers(info.tenant):  # an admin of its tenant deletes it unseen
            info = svc.visible_collection(name, who.principals, who.tenant)
            if info.owner != who.key.principal:
                raise PermissionDeniedError("only an admin or the collection's owner deletes it")
        svc.delete_collection(name)
    except Exception as exc:
        who.audit_failure(route, "collection_delete", exc, collection=name)
        raise
    who.audit(route, "collection_delete", 204, collection=name)
    return Response(status_code=204)


# -- documents --------------------------------------------------------------------------------


@collections.get(
    "/collections/{name}/documents", summary="Documents of a collection this key may read"
)
def list_documents(
    name: str,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DocumentOut]:
    svc = who.state.svc
    svc.visible_collection(name, who.principals, who.tenant)
    docs = svc.documents(name, limit=limit, offset=offset, principals=who.principals,
                         tenant=who.tenant)  # fmt: skip
    return [DocumentOut(**public.document(who.state.ids, d)) for d in docs]


@collections.get(
    "/collections/{name}/documents/{document_id}", summary="A document with its chunks"
)
def get_document(name: str, document_id: DocumentName, who: Reader) -> DocumentDetailOut:
    svc, ids = who.state.svc, who.state.ids
    svc.visible_collection(name, who.principals, who.tenant)
    doc_id = ids.document_id(document_id)
    doc = svc.document(name, doc_id, principals=who.principals, tenant=who.tenant)
    chunks = svc.chunks(name, doc_id, principals=who.principals, tenant=who.tenant)
    return DocumentDetailOut(**public.document(ids, doc),
                             chunks=[ChunkOut(**public.chunk(ids, c)) for c in chunks])  # fmt: skip


@collections.delete(
    "/collections/{name}/documents/{document_id}",
    status_code=204,
    summary="Delete a document from SQL and every index (writer who may read it)",
)
def delete_document(name: str, document_id: DocumentName, who: Writer) -> Response:
    route, svc = "/v1/collections/{name}/documents/{document_id}", who.state.svc
    try:
        svc.visible_collection(name, who.principals, who.tenant)
        removed = svc.delete_document(name, who.state.ids.document_id(document_id),
                                      principals=who.principals, tenant=who.tenant)  # fmt: skip
    except Exception as exc:
        who.audit_failure(route, "delete", exc, collection=name,
                          detail={"document_id": document_id})  # fmt: skip
        raise
    who.audit(route, "delete", 204, collection=name,
              detail={"document_id": document_id, "chunks": removed})  # fmt: skip
    return Response(status_code=204)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _upload_name(filename: str | None) -> str:
    given = PurePath(filename or "").name
    name = _SAFE_NAME.sub("_", given).lstrip(".")
    if not name:
        raise InputError("every uploaded file needs a name")
    if given.lower().endswith(SIDECAR_SUFFIX) or name.lower().endswith(SIDECAR_SUFFIX):
        raise InputError(
            f"{name}: ACL sidecars cannot be uploaded; give the readers with allow or public"
        )
    return name[:200]


@collections.post(
    "/collections/{name}/documents",
    status_code=202,
    summary="Upload files and/or give a URL: an ingest job (writer)",
)
def add_documents(
    name: str,
    who: Writer,
    files: Annotated[list[UploadFile] | None, File(description="Documents to ingest.")] = None,
    url: Annotated[str | None, Form(max_length=2048, description="A page to fetch.")] = None,
    allow: Annotated[
        list[str] | None,
        Form(description="Principals who may read them (default: only you)."),
    ] = None,
    public: Annotated[bool, Form()] = False,
) -> JobOut:
    """What the caller uploads or names lives in its own namespace: it replaces only the
    caller's own earlier uploads (and only while the caller may read them), its ACL is only
    what the caller asks for (default: the caller alone), and no ACL sidecar is ever read."""
    job = submit_ingest(who, name, files or [], url, allow or [], public,
                        route="/v1/collections/{name}/documents")  # fmt: skip
    return JobOut(**job.to_dict())


def submit_ingest(
    who: Caller, name: str, files: list[UploadFile], url: str | None, allow: list[str],
    public: bool, *, route: str,
) -> JobInfo:  # fmt: skip
    """An ingest job of ``files`` and/or ``url`` into collection ``name`` for ``who`` (a
    writer: the route's or the page's), audited as ``route`` (see ``add_documents``)."""
    svc = who.state.svc
    staged: Path | None = None
    try:
        info = svc.visible_collection(name, who.principals, who.tenant)
        if not files and not url:
            raise InputError("give files to upload, a url, or both")
        if public and allow:
            raise InputError("give allow or public, not both")
        job_id = who.state.jobs.new_id()
        sources: list[SourceSpec] = []
        names: list[str] = []
        if files:
            staged = staging_dir(svc.settings.data_dir, job_id)
            staged.mkdir(parents=True, exist_ok=True)
            for upload in files:
                target = staged / _upload_name(upload.filename)
                _save(upload, target, svc.settings.max_file_bytes)
                names.append(target.name)
            sources.append(SourceSpec(str(staged), include=tuple(dict.fromkeys(names)),
                                      uploads=True))  # fmt: skip
        if url:
            if not url.startswith(("http://", "https://")):
                raise InputError("url must be http:// or https://")
            svc.check_url(url, trusted=False)  # the job checks every address it fetches
            sources.append(SourceSpec(url))
            names.append(url)
        namespace = f"{who.tenant or '-'}/{who.key.principal}"
        readers = () if public else tuple(allow or [who.key.principal])
        request = IngestRequest(
            name, sources, allow=readers, public=public, tenant=who.tenant or None,
            delete_missing=False, namespace=namespace,
            replaces_only_readable=(tuple(who.principals), who.tenant), trusted=False,
        )  # fmt: skip
        keep_in = (
            kept_dir(svc.settings.data_dir, info.id) / namespace_digest(namespace)
            if svc.settings.keep_uploads
            else None
        )
        job = who.state.jobs.submit(request, principal=who.key.principal, key_id=who.key.key_id,
                                    sources=names, job_id=job_id, staged=staged,
                                    keep_in=keep_in, tenant=who.key.tenant)  # fmt: skip
    except Exception as exc:
        if staged is not None:
            finish(staged, None)  # nothing was queued: the bytes go now
        who.audit_failure(route, "ingest", exc, collection=name)
        raise
    who.audit(route, "ingest", 202, collection=name, detail={"job": job.id, "sources": names})
    return job


@collections.patch(
    "/collections/{name}/documents/{document_id}",
    summary="Change who may read a document (writer who may read it); in force at once",
)
def change_document_acl(
    name: str, document_id: DocumentName, body: DocumentAclIn, who: Writer
) -> DocumentOut:
    route, svc = "/v1/collections/{name}/documents/{document_id}", who.state.svc
    try:
        svc.visible_collection(name, who.principals, who.tenant)
        doc = svc.set_document_acl(name, who.state.ids.document_id(document_id),
                                   allow=body.allow, public=body.public,
                                   principals=who.principals, tenant=who.tenant)  # fmt: skip
    except Exception as exc:
        who.audit_failure(route, "acl_change", exc, collection=name,
                          detail={"document_id": document_id})  # fmt: skip
        raise
    who.audit(route, "acl_change", 200, collection=name,
              detail={"document_id": document_id, "allow": sorted(doc.principals)})  # fmt: skip
    return DocumentOut(**public.document(who.state.ids, doc))


def _save(upload: UploadFile, target: Path, limit: int) -> None:
    """Streams an upload to ``target`` (atomically), refusing it past ``limit`` bytes."""
    part = target.with_name(f".{target.name}.part")
    size = 0
    with part.open("wb") as out:
        while block := upload.file.read(1 << 20):
            size += len(block)
            if size > limit:
                out.close()
                part.unlink(missing_ok=True)
                raise DocumentTooLargeError(f"{target.name} is over {limit:,} bytes")
            out.write(block)
    part.replace(target)


@collections.get("/jobs/{job_id}", summary="An ingest job: progress, counts, per-file errors")
def get_job(job_id: str, who: Reader) -> JobOut:
    return JobOut(**visible_job(who, job_id).to_dict())


def visible_job(who: Caller, job_id: str) -> JobInfo:
    """A job is its submitter's (within the tenant it was submitted in) and its tenant's admins';
    anyone else's job is as missing as one that does not exist."""
    job = who.state.jobs.get(job_id)
    mine = job.principal == who.key.principal and job.tenant == who.key.tenant
    if not mine and not who.administers(job.tenant):
        raise NotFoundError(f"no job {job_id!r}")
    return job


# -- keys and audit ---------------------------------------------------------------------------


@admin.post(
    "/keys",
    status_code=201,
    summary="Create an API key (admin; an admin with a tenant makes keys of its tenant only)",
)
def create_key(body: KeyIn, who: Admin) -> NewKeyOut:
    tenant = body.tenant
    try:
        if who.key.tenant is not None:
            tenant = tenant or who.key.tenant  # a tenant admin's keys are its tenant's
            if tenant != who.key.tenant:
                raise PermissionDeniedError("an admin with a tenant makes keys of that tenant")
        info, secret = who.state.keys.create(
            body.principal, groups=body.groups, role=body.role, name=body.name, tenant=tenant
        )
    except Exception as exc:
        who.audit_failure("/v1/keys", "key_create", exc)
        raise
    detail = {"key_id": info.key_id, "principal": info.principal, "role": info.role,
              "tenant": info.tenant}  # fmt: skip
    who.audit("/v1/keys", "key_create", 201, detail=detail)
    return NewKeyOut(key=KeyOut(**info.to_dict()), secret=secret)


@admin.get("/keys", summary="List API keys (admin: of its tenant, if it has one; no secrets)")
def list_keys(who: Admin) -> list[KeyOut]:
    return [KeyOut(**k.to_dict()) for k in who.state.keys.list(tenant=who.key.tenant)]


@admin.delete("/keys/{key_id}", summary="Revoke an API key (admin: of its tenant, if it has one)")
def revoke_key(key_id: str, who: Admin) -> KeyOut:
    route = "/v1/keys/{key_id}"
    try:
        info = who.state.keys.revoke(key_id, tenant=who.key.tenant)
    except Exception as exc:
        who.audit_failure(route, "key_revoke", exc, detail={"key_id": key_id})
        raise
    who.audit(route, "key_revoke", 200, detail={"key_id": key_id})
    return KeyOut(**info.to_dict())


@admin.get(
    "/audit",
    summary="The audit log, newest first (admin: its tenant's keys' rows, if it has a tenant); "
    "format=jsonl exports JSON lines",
    response_model=list[AuditOut],
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
def read_audit(
    who: Admin,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
    format: Annotated[Literal["json", "jsonl"], Query()] = "json",
) -> Any:
    entries = who.state.audit.entries(limit=limit, before_id=before_id, action=action,
                                      tenant=who.key.tenant, request_id=request_id)  # fmt: skip
    ids = who.state.ids
    rows = [{**e.to_dict(), "chunk_ids": [ids.chunk(c) for c in e.chunk_ids]} for e in entries]
    if format == "jsonl":
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        return PlainTextResponse(lines, media_type="application/x-ndjson")
    return rows
