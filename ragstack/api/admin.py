"""The admin page (``/admin``, server-rendered) and its JSON twin (``/v1/admin/...``).

The page logs in with an admin API key and then runs on a signed, expiring session
(``ragstack.api.pages``, ``ragstack.api.sessions``): the cookie never holds the key, every
request re-checks that the key is live and an admin, and every action (a POST) carries the
session's CSRF token. Failed logins count against the client address like failed API keys.
An admin with a tenant sees only its tenant's collections, here and in the JSON routes
(another tenant's collection, or a tenant-less one, answers exactly like a missing one). Both
the page and the API read ``Ragstack.collection_health``, so their figures are the same
numbers.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ragstack.api import pages
from ragstack.api.deps import Admin, ApiState, Caller, State
from ragstack.api.routes import RowId
from ragstack.domain import CollectionInfo
from ragstack.errors import NotFoundError, RagstackError

api = APIRouter(prefix="/v1/admin", tags=["admin"])
page = APIRouter(prefix="/admin", include_in_schema=False)


def administered(who: Caller, name: str) -> CollectionInfo:
    """The collection if this admin administers it; else the very error a missing one gives."""
    info = who.state.svc.collection(name)
    if not who.administers(info.tenant):
        raise NotFoundError(f"no collection named {name!r}")
    return info


# -- JSON ---------------------------------------------------------------------------------------


@api.get("/collections/{name}/health", summary="Index health of a collection (admin)")
def health(name: str, who: Admin) -> dict[str, Any]:
    administered(who, name)
    return who.state.svc.collection_health(name)


@api.post("/collections/{name}/reindex", summary="Rebuild the indexes from SQL (admin)")
def reindex(name: str, who: Admin) -> dict[str, int]:
    try:
        administered(who, name)
        added = who.state.svc.reindex(name)
    except Exception as exc:
        who.audit_failure("/v1/admin/collections/{name}/reindex", "reindex", exc, collection=name)
        raise
    who.audit("/v1/admin/collections/{name}/reindex", "reindex", 200, collection=name,
              detail=added)  # fmt: skip
    return added


class ReembedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedder: str = Field(
        min_length=1,
        max_length=200,
        description="The model to move to: a model id, or a backend name as RAGSTACK_EMBEDDER "
        "takes it (int8, sentence-transformers, onnx-int8, hashing; a local model is the one "
        "RAGSTACK_EMBEDDER_MODEL_PATH names).",
    )


@api.post(
    "/collections/{name}/reembed",
    status_code=202,
    summary="Move the collection to another embedder, live (admin)",
)
def reembed(name: str, body: ReembedIn, who: Admin) -> dict[str, Any]:
    """Starts a live re-embed in the background (or resumes a stopped one to the same model);
    searches and answers keep using the current model until it switches. Poll
    ``GET .../reembed`` for its progress."""
    route = "/v1/admin/collections/{name}/reembed"
    try:
        administered(who, name)
        run = who.state.svc.start_reembed(name, body.embedder)
    except Exception as exc:
        who.audit_failure(route, "reembed", exc, collection=name)
        raise
    who.audit(route, "reembed", 202, collection=name,
              detail={"run": run.id, "embedder": run.model_id})  # fmt: skip
    return _public_run(run.to_dict())


@api.get("/collections/{name}/reembed", summary="The collection's latest re-embed (admin)")
def reembed_status(name: str, who: Admin) -> dict[str, Any] | None:
    administered(who, name)
    run = who.state.svc.reembed_status(name)
    return _public_run(run.to_dict()) if run is not None else None


def _public_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run as the API shows it: no internal ids, no server paths or host names."""
    return {k: v for k, v in run.items()
            if k not in ("collection_id", "model_path", "owner")}  # fmt: skip


@api.post("/collections/{name}/cache/clear", summary="Clear the answer cache (admin)")
def clear_cache(name: str, who: Admin) -> dict[str, int]:
    administered(who, name)
    removed = who.state.svc.clear_cache(name)
    who.audit("/v1/admin/collections/{name}/cache/clear", "cache_clear", 200, collection=name,
              detail={"removed": removed})  # fmt: skip
    return {"removed": removed}


# -- the page -----------------------------------------------------------------------------------

LOGIN = "/admin/login"


def _render(request: Request, name: str, context: dict[str, Any]) -> Response:
    return pages.render(request, name, context)


def _to_login() -> Response:
    return pages.redirect(LOGIN)


def _refused(message: str, status: int = 403) -> Response:
    return pages.refused(message, status)


def _page_admin(request: Request, state: ApiState) -> Caller | None:
    """The admin behind the page's session (audited like an API caller), or ``None``."""
    who = pages.page_caller(request, state, state.admin_sessions)
    if who is not None:
        state.audit.flush()  # the page's figures count every request recorded before it
    return who


def _page_action(request: Request, state: ApiState, csrf: str | None) -> Caller | Response:
    who = pages.page_action(request, state, state.admin_sessions, csrf, LOGIN)
    if isinstance(who, Caller):
        state.audit.flush()
    return who


Csrf = Annotated[str | None, Form(max_length=200)]


@page.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _render(request, "login.html", {"logged_in": False})


@page.post("/login", response_class=HTMLResponse)
def login(request: Request, state: State, key: Annotated[str, Form(max_length=200)]) -> Response:
    return pages.sign_in(request, state, key, state.admin_sessions, template="login.html",
                         home="/admin", what="admin key", route="/admin/login")  # fmt: skip


@page.post("/logout")
def logout(request: Request, state: State, csrf: Csrf = None) -> Response:
    who = _page_action(request, state, csrf)
    if isinstance(who, Caller):
        who.audit("/admin/logout", "logout", 303)
    elif who.status_code == 403:  # a forged logout; without a session there is nothing to end
        return who
    response = _to_login()
    state.admin_sessions.end(request, response)
    return response


def _context(who: Caller, **values: Any) -> dict[str, Any]:
    assert who.session is not None
    return {"logged_in": True, "csrf": who.session.csrf, **values}


@page.get("", response_class=HTMLResponse)
def collections_page(request: Request, state: State) -> Response:
    who = _page_admin(request, state)
    if who is None:
        return _to_login()
    figures = state.svc.collection_figures(who.key.tenant)
    return _render(request, "collections.html", _context(who, figures=figures))


@page.get("/collections/{name}", response_class=HTMLResponse)
def collection_page(
    request: Request, name: str, state: State, flash: str | None = None
) -> Response:
    who = _page_admin(request, state)
    if who is None:
        return _to_login()
    svc = state.svc
    try:
        administered(who, name)
        h = svc.collection_health(name)
    except NotFoundError:
        return _refused("no such collection", 404)
    context = _context(
        who,
        h=h,
        flash=flash,
        chart=latency_chart(h["latency"]),
        documents=svc.documents(name, limit=200, tenant=who.tenant),
        reembed=_reembed_line(svc.reembed_status(name)),
    )
    return _render(request, "collection.html", context)


def _reembed_line(run: Any) -> str | None:
    """The latest re-embed in a line for the page: status, target, progress, check."""
    if run is None:
        return None
    line = f"run {run.id}: {run.status}, {run.from_model} -> {run.model_id}, "
    line += f"{run.done}/{run.total} chunks"
    if run.report:
        line += f", check {'ok' if run.report.get('ok') else 'FAILED'}"
        line += f" (recall@10 {run.report.get('recall_at_10')})"
    return line + (f": {run.message}" if run.message else "")


def _back(name: str, message: str) -> Response:
    """To the collection's page, with what was done shown at the top."""
    return pages.redirect(f"/admin/collections/{quote(name)}?flash={quote(message)}")


def _page_collection(
    request: Request, state: ApiState, name: str, csrf: str | None
) -> Caller | Response:
    """``_page_action`` for an action on collection ``name`` (404 if not this admin's)."""
    who = _page_action(request, state, csrf)
    if isinstance(who, Caller):
        try:
            administered(who, name)
        except NotFoundError:
            return _refused("no such collection", 404)
    return who


@page.post("/collections/{name}/reindex")
def reindex_page(request: Request, name: str, state: State, csrf: Csrf = None) -> Response:
    who = _page_collection(request, state, name, csrf)
    if isinstance(who, Response):
        return who
    added = state.svc.reindex(name)
    who.audit("/admin/collections/{name}/reindex", "reindex", 200, collection=name, detail=added)
    return _back(name, f"re-indexed: {added['dense']} dense, {added['bm25']} BM25 chunks")


@page.post("/collections/{name}/reembed")
def reembed_page(
    request: Request,
    name: str,
    state: State,
    embedder: Annotated[str, Form(min_length=1, max_length=200)],
    csrf: Csrf = None,
) -> Response:
    who = _page_collection(request, state, name, csrf)
    if isinstance(who, Response):
        return who
    try:
        run = state.svc.start_reembed(name, embedder.strip())
    except RagstackError as exc:
        who.audit_failure("/admin/collections/{name}/reembed", "reembed", exc, collection=name)
        return _back(name, f"re-embed refused: {exc}")
    who.audit("/admin/collections/{name}/reembed", "reembed", 303, collection=name,
              detail={"run": run.id, "embedder": run.model_id})  # fmt: skip
    return _back(name, f"re-embedding with {run.model_id} (run {run.id}) in the background")


@page.post("/collections/{name}/clear-cache")
def clear_cache_page(request: Request, name: str, state: State, csrf: Csrf = None) -> Response:
    who = _page_collection(request, state, name, csrf)
    if isinstance(who, Response):
        return who
    removed = state.svc.clear_cache(name)
    who.audit("/admin/collections/{name}/clear-cache", "cache_clear", 200, collection=name,
              detail={"removed": removed})  # fmt: skip
    return _back(name, f"cache cleared: {removed} entries")


@page.post("/collections/{name}/documents/{document_id}/delete")
def delete_document_page(
    request: Request, name: str, document_id: RowId, state: State, csrf: Csrf = None
) -> Response:
    who = _page_collection(request, state, name, csrf)
    if isinstance(who, Response):
        return who
    removed = state.svc.delete_document(name, document_id, tenant=who.tenant)
    who.audit("/admin/collections/{name}/documents/{document_id}/delete", "delete", 200,
              collection=name, detail={"document_id": document_id, "chunks": removed})  # fmt: skip
    return _back(name, f"deleted document {document_id}")


def latency_chart(latency: dict[str, Any], width: int = 640, height: int = 160) -> str:
    """p50 and p95 per hour as an inline SVG line chart (no JavaScript, no build step)."""
    points = [(a, row) for a, rows in latency["series"].items() for row in rows]
    if not points:
        return "<p id='chart-empty'>no searches or answers in this window yet</p>"
    hours = sorted({row["hour"] for _, row in points})
    top = max(row["p95_ms"] for _, row in points) or 1.0
    colours = {("search", "p50_ms"): "#1a73e8", ("search", "p95_ms"): "#8ab4f8",
               ("answer", "p50_ms"): "#188038", ("answer", "p95_ms"): "#81c995"}  # fmt: skip
    lines = []
    for (action, field), colour in colours.items():
        rows = {r["hour"]: r[field] for a, r in points if a == action}
        if not rows:
            continue
        xy = [
            (20 + (width - 40) * (hours.index(h) / max(1, len(hours) - 1)),
             height - 20 - (height - 40) * (v / top))
            for h, v in sorted(rows.items())
        ]  # fmt: skip
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
            f"<title>{escape(action)} {field[:3]}</title></polyline>"
        )
    return (
        f'<svg id="latency-chart" width="{width}" height="{height}" role="img" '
        f'aria-label="latency per hour">'
        f'<text x="4" y="14" font-size="11">{top:.0f} ms</text>' + "".join(lines) + "</svg>"
        "<p><small>blue: search p50 / p95; green: answer p50 / p95</small></p>"
    )
