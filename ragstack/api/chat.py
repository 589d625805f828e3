"""The chat page for people who ask (``/`` and ``/ui``), server-rendered like ``/admin``.

Sign in with any live key; the page then runs on a signed, expiring session of its own
(``ragstack.api.pages``: the cookie never holds the key, and neither does the page). Pick a
collection, ask and follow up (the answer streams; the conversation goes with each question
as ``AnswerRequest.history``, so a follow-up is searched as the standalone question it stands
for), open each ``[n]`` to see its source with the supporting characters highlighted in the
chunk and a link to the whole document, search, and (writers) upload files and watch the job.

Every read and write goes through the very functions the REST routes use (``run_search``,
``_generate``, ``submit_ingest``, ``visible_job``, ``Ragstack.chunk`` / ``document`` /
``chunks`` with the caller's principals and tenant), so the page shows exactly what the key may
read: a hidden collection, document or chunk is as missing as one that does not exist. Ids on
the page are the public ``d_``/``c_`` ones. Every POST carries the session's CSRF token (a form
field, or the ``X-CSRF-Token`` header of the page's own ``fetch``) and must not come from
another site. Document text is only ever rendered by the templates' autoescaping, and the
Content-Security-Policy allows no inline script (the page's script is ``/ui/chat.js``): a
document holding ``<script>`` shows as text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ragstack.api import pages, public
from ragstack.api.deps import ApiState, Caller, State
from ragstack.api.errors import status_of
from ragstack.api.models import AnswerIn, SearchIn
from ragstack.api.routes import (
    DocumentName,
    _generate,
    _sse,
    _streamed,
    run_search,
    submit_ingest,
    visible_job,
)
from ragstack.api.sessions import cross_site, csrf_ok
from ragstack.domain import ChunkInfo
from ragstack.errors import PermissionDeniedError, RagstackError, UnauthenticatedError
from ragstack.generation.prompt import CITATION_MARKER, marker_numbers

page = APIRouter(include_in_schema=False)

HOME, LOGIN = "/ui", "/ui/login"
MAX_DOCUMENT_CHUNKS = 2000  # shown of one document
SCRIPT = (Path(__file__).parent / "templates" / "ui" / "chat.js").read_text(encoding="utf-8")
# The admin page's headers, and no script but the page's own file: nothing inline runs.
HEADERS = {
    **pages.PAGE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

Csrf = Annotated[str | None, Form(max_length=200)]
Name = Annotated[str | None, Query(max_length=128)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return pages.render(request, name, context, status, page_headers=HEADERS)


def _refused(message: str, status: int = 403) -> Response:
    return pages.refused(message, status, HEADERS)


def _failed(exc: RagstackError) -> Response:
    """A service error as a page: its status and message (what the REST routes would say)."""
    return _refused(str(exc), status_of(exc))


def _reader(request: Request, state: ApiState, *, spend: bool = False) -> Caller | None:
    """The key behind the page's session, or ``None``; ``spend``: a request that searches or
    answers takes from the key's rate limit as the REST routes do."""
    who = pages.page_caller(request, state, state.ui_sessions)
    if who is not None and spend:
        state.limiter.take(who.key.key_id)
    return who


def _context(who: Caller, **values: Any) -> dict[str, Any]:
    assert who.session is not None
    return {
        "logged_in": True,
        "csrf": who.session.csrf,
        "principal": who.key.principal,
        "role": who.key.role,
        "writer": who.key.allows("writer"),
        **values,
    }


# -- signing in ---------------------------------------------------------------------------------


@page.get("/")
def root() -> Response:
    return pages.redirect(HOME, HEADERS)


@page.get(f"{HOME}/chat.js")
def script() -> Response:
    return Response(SCRIPT, media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})  # fmt: skip


@page.get(LOGIN, response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _render(request, "ui/login.html", {"logged_in": False})


@page.post(LOGIN, response_class=HTMLResponse)
def login(request: Request, state: State, key: Annotated[str, Form(max_length=200)]) -> Response:
    return pages.sign_in(request, state, key, state.ui_sessions, template="ui/login.html",
                         home=HOME, what="API key", route=LOGIN, headers=HEADERS)  # fmt: skip


@page.post(f"{HOME}/logout")
def logout(request: Request, state: State, csrf: Csrf = None) -> Response:
    who = pages.page_action(request, state, state.ui_sessions, csrf, LOGIN, HEADERS)
    if isinstance(who, Caller):
        who.audit(f"{HOME}/logout", "logout", 303)
    elif who.status_code == 403:  # a forged logout; without a session there is nothing to end
        return who
    response = pages.redirect(LOGIN, HEADERS)
    state.ui_sessions.end(request, response)
    return response


# -- the chat page ------------------------------------------------------------------------------


@page.get(HOME, response_class=HTMLResponse)
def chat_page(
    request: Request,
    state: State,
    c: Name = None,
    mode: Annotated[str, Query(pattern="^(ask|search)$")] = "ask",
    q: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    """The collections the key can see, the chosen one (``c``; the first by default) and
    either the conversation (``mode=ask``) or a search's hits (``mode=search&q=...``)."""
    who = _reader(request, state, spend=bool(q and mode == "search"))
    if who is None:
        return pages.redirect(LOGIN, HEADERS)
    svc = state.svc
    visible = [info.name for info, _ in svc.visible_collections(who.principals, who.tenant)]
    if c is not None and c not in visible:  # hidden or missing: the same answer
        return _refused("no such collection", 404)
    collection = c or (visible[0] if visible else None)
    hits: list[dict[str, Any]] | None = None
    if collection and mode == "search" and q and q.strip():
        try:
            found = run_search(SearchIn(collection=collection, query=q), who, HOME)
        except RagstackError as exc:
            return _failed(exc)
        hits = [{**h.model_dump(), "href": _source_href(collection, h.model_dump())}
                for h in found.hits]  # fmt: skip
    context = _context(who, collections=visible, collection=collection, mode=mode, q=q or "",
                       hits=hits)  # fmt: skip
    return _render(request, "ui/chat.html", context)


@page.post("/ui/ask")
async def ask(
    request: Request,
    state: State,
    body: AnswerIn,
    x_csrf_token: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """The answer as Server-Sent Events: ``delta`` (text as it is generated), then ``answer``
    (the answer rendered with its citations as links, its text for the conversation, the
    standalone query searched), or ``error``. The page's ``fetch`` sends the CSRF token as a
    header; errors before the stream starts are the API's JSON errors."""
    if cross_site(request):
        raise PermissionDeniedError("refused: a request from another site")
    who = await run_in_threadpool(_reader, request, state, spend=True)
    if who is None:
        raise UnauthenticatedError("sign in first")
    if who.session is None or not csrf_ok(who.session, x_csrf_token):
        raise PermissionDeniedError("refused: the request did not carry this session's CSRF token")
    result = await _generate(body.model_copy(update={"stream": True}), who, f"{HOME}/ask")
    collection = body.collection
    if isinstance(result, dict):  # never: the page always streams
        return Response(_sse("answer", _answer_event(collection, result)),
                        media_type="text/event-stream")  # fmt: skip

    def events() -> Iterator[str]:
        for name, payload in result:
            yield _sse(name, _answer_event(collection, payload) if name == "answer" else payload)

    return _streamed(events(), result)


def _answer_event(collection: str, answer: dict[str, Any]) -> dict[str, Any]:
    """What the page gets of a (public-shaped) answer: the rendered HTML, the answer's text
    for the conversation's next turn, the query that was searched."""
    view = answer_view(collection, answer)
    html = pages.templates.env.get_template("ui/answer.html").render(**view)
    return {"html": html, "answer": answer["answer"], "query": answer["query"],
            "abstained": answer["abstained"]}  # fmt: skip


def answer_view(collection: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer's text cut into pieces: plain text, and each ``[n]`` marker as a link to the
    citation of that source in that sentence (its supporting characters highlighted), or as
    plain text when there is none; and its numbered sources, each a link."""
    text, sentences, flat = answer["answer"], answer["sentences"], answer["citations"]
    cited: list[tuple[int, int, dict[int, dict[str, Any]]]] = []
    at = 0
    for s in sentences:
        mine = flat[at : at + len(s["citations"])]
        at += len(s["citations"])
        cited.append((s["start"], s["end"], {c["number"]: c for c in mine}))
    first: dict[int, dict[str, Any]] = {}
    for _, _, by_number in cited:
        for n, c in by_number.items():
            first.setdefault(n, c)
    pieces: list[dict[str, Any]] = []
    pos = 0
    for marker in CITATION_MARKER.finditer(text):
        if marker.start() > pos:
            pieces.append({"text": text[pos : marker.start()]})
        pos = marker.end()
        found = next((b for s, e, b in cited if s <= marker.start() < e), {})
        for n in marker_numbers(marker.group(1)):
            cite = found.get(n)
            if cite is None:
                pieces.append({"text": f"[{n}]"})
            else:
                pieces.append({"cite": n, "supported": cite["supported"],
                               "href": _source_href(collection, cite)})  # fmt: skip
    if pos < len(text):
        pieces.append({"text": text[pos:]})
    sources = [
        {**s, "href": _source_href(collection, first.get(s["number"], s))}
        for s in answer["sources"]
    ]
    return {"pieces": pieces, "sources": sources, "query": answer["query"],
            "abstained": answer["abstained"], "collection": collection}  # fmt: skip


def _source_href(collection: str, cited: dict[str, Any]) -> str:
    """The source view of ``cited`` (a citation: its span highlighted; a source: none)."""
    params: dict[str, Any] = {"c": collection, "chunk": cited["chunk_id"]}
    if "char_start" in cited and "char_end" in cited:
        params |= {"start": cited["char_start"], "end": cited["char_end"]}
    return f"{HOME}/source?{urlencode(params)}"


def _document_href(collection: str, document_id: str, start: int, end: int) -> str:
    query = urlencode({"c": collection, "start": start, "end": end})
    return f"{HOME}/documents/{quote(document_id)}?{query}#cited"


# -- sources and documents ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A stretch of a document's text that its chunks hold: where it starts, its section."""

    offset: int
    text: str
    section: str = ""

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


@dataclass(frozen=True)
class Piece:
    """Of a run: highlighted or not; the first piece of a run after a gap in what is shown, or
    under a new section (its last heading)."""

    text: str
    mark: bool = False
    gap: bool = False
    heading: str = ""


def covered(chunks: Sequence[ChunkInfo]) -> list[Run]:
    """The document text its chunks cover, in order: overlapping chunks once, adjacent ones of
    one section joined (each chunk's text is its span of the document's text)."""
    runs: list[Run] = []
    for c in sorted(chunks, key=lambda c: (c.char_start, c.char_end)):
        end = runs[-1].end if runs else 0
        if runs and c.char_end <= end:
            continue
        start = max(c.char_start, end) if runs else c.char_start
        text = c.text[start - c.char_start :]
        if runs and start == end and runs[-1].section == c.section:
            runs[-1] = Run(runs[-1].offset, runs[-1].text + text, c.section)
        else:
            runs.append(Run(start, text, c.section))
    return runs


def marked(runs: Sequence[Run], start: int, end: int) -> list[Piece]:
    """``runs`` cut at the span ``[start, end)`` of the document's text, which is marked."""
    out: list[Piece] = []
    for i, run in enumerate(runs):
        a = min(max(start - run.offset, 0), len(run.text))
        b = min(max(end - run.offset, 0), len(run.text))
        parts = [Piece(run.text[:a]), Piece(run.text[a:b], True), Piece(run.text[b:])]
        kept = [p for p in parts if p.text]
        if kept:
            before = runs[i - 1] if i else None
            gap = before is not None and run.offset > before.end
            new = run.section != (before.section if before else "")
            heading = run.section.rsplit(" > ", 1)[-1] if new else ""
            kept[0] = Piece(kept[0].text, kept[0].mark, gap, heading)
        out.extend(kept)
    return out


@page.get(f"{HOME}/source", response_class=HTMLResponse)
def source(
    request: Request,
    state: State,
    c: Annotated[str, Query(max_length=128)],
    chunk: Annotated[str, Query(max_length=64)],
    start: Offset = 0,
    end: Offset = 0,
    partial: bool = False,
) -> Response:
    """A chunk the key may read with ``[start, end)`` (offsets in its document's text: a
    citation's supporting sentence) highlighted, and a link to its whole document."""
    who = _reader(request, state)
    if who is None:
        return pages.redirect(LOGIN, HEADERS)
    svc, ids = state.svc, state.ids
    try:
        svc.visible_collection(c, who.principals, who.tenant)
        found, doc = svc.chunk(c, ids.chunk_id(chunk), principals=who.principals,
                               tenant=who.tenant)  # fmt: skip
    except RagstackError as exc:
        return _failed(exc)
    shown = public.chunk(ids, found)
    context = _context(
        who,
        collection=c,
        chunk=shown,
        document=public.document(ids, doc),
        pieces=marked([Run(found.char_start, found.text)], start, end),
        highlighted=start < end and start < found.char_end and end > found.char_start,
        document_href=_document_href(c, ids.document(doc.id), start, end),
        partial=partial,
    )
    return _render(request, "ui/_source.html" if partial else "ui/source.html", context)


@page.get(HOME + "/documents/{document_id}", response_class=HTMLResponse)
def document(
    request: Request,
    state: State,
    document_id: DocumentName,
    c: Annotated[str, Query(max_length=128)],
    start: Offset = 0,
    end: Offset = 0,
) -> Response:
    """A document the key may read, its text as its chunks hold it, ``[start, end)``
    highlighted."""
    who = _reader(request, state)
    if who is None:
        return pages.redirect(LOGIN, HEADERS)
    svc, ids, readers, tenant = state.svc, state.ids, who.principals, who.tenant
    try:
        svc.visible_collection(c, readers, tenant)
        doc_id = ids.document_id(document_id)
        doc = svc.document(c, doc_id, principals=readers, tenant=tenant)
        chunks = svc.chunks(c, doc_id, principals=readers, tenant=tenant)
    except RagstackError as exc:
        return _failed(exc)
    context = _context(
        who,
        collection=c,
        document=public.document(ids, doc),
        pieces=marked(covered(chunks[:MAX_DOCUMENT_CHUNKS]), start, end),
        truncated=len(chunks) > MAX_DOCUMENT_CHUNKS,
    )
    return _render(request, "ui/document.html", context)


# -- uploads and jobs ------------------------------------------------------------------------------


@page.post(HOME + "/collections/{name}/documents")
def upload(
    request: Request,
    state: State,
    name: str,
    files: Annotated[list[UploadFile] | None, File()] = None,
    public: Annotated[bool, Form()] = False,
    csrf: Csrf = None,
) -> Response:
    """A writer's files into collection ``name`` (readable by the writer alone, or by everyone
    who can see the collection): the job's page, which follows it to the end."""
    who = pages.page_action(request, state, state.ui_sessions, csrf, LOGIN, HEADERS)
    if not isinstance(who, Caller):
        return who
    try:
        state.limiter.take(who.key.key_id)
        who.key.require("writer")
        job = submit_ingest(who, name, files or [], None, [], public,
                            route=HOME + "/collections/{name}/documents")  # fmt: skip
    except RagstackError as exc:
        return _failed(exc)
    return pages.redirect(f"{HOME}/jobs/{quote(job.id)}?{urlencode({'c': name})}", HEADERS)


@page.get(HOME + "/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request,
    state: State,
    job_id: Annotated[str, PathParam(max_length=64)],
    c: Name = None,
) -> Response:
    """An ingest job of this key's: its status, progress, counts and per-file errors; the page
    reloads itself every second until the job ends."""
    who = _reader(request, state)
    if who is None:
        return pages.redirect(LOGIN, HEADERS)
    try:
        job = visible_job(who, job_id)
    except RagstackError as exc:
        return _failed(exc)
    info = job.to_dict()
    running = info["status"] in ("queued", "running")
    return _render(request, "ui/job.html",
                   _context(who, job=info, running=running, collection=c))  # fmt: skip
