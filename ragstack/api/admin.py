"""The admin page (``/admin``, server-rendered) and its JSON twin (``/v1/admin/...``).

The page logs in with an admin API key, kept in an HttpOnly, SameSite=Strict cookie (so no
other site can post its forms). Both the page and the API read ``Ragstack.collection_health``,
so their figures are the same numbers.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ragstack.api.deps import Admin, ApiState, Caller, State
from ragstack.api.routes import RowId
from ragstack.errors import NotFoundError, RagstackError

COOKIE = "ragstack_admin"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

api = APIRouter(prefix="/v1/admin", tags=["admin"])
page = APIRouter(prefix="/admin", include_in_schema=False)


# -- JSON ---------------------------------------------------------------------------------------


@api.get("/collections/{name}/health", summary="Index health of a collection (admin)")
def health(name: str, who: Admin) -> dict[str, Any]:
    return who.state.svc.collection_health(name)


@api.post("/collections/{name}/reindex", summary="Rebuild the indexes from SQL (admin)")
def reindex(name: str, who: Admin) -> dict[str, int]:
    try:
        added = who.state.svc.reindex(name)
    except Exception as exc:
        who.audit_failure("/v1/admin/collections/{name}/reindex", "reindex", exc, collection=name)
        raise
    who.audit("/v1/admin/collections/{name}/reindex", "reindex", 200, collection=name,
              detail=added)  # fmt: skip
    return added


@api.post("/collections/{name}/cache/clear", summary="Clear the answer cache (admin)")
def clear_cache(name: str, who: Admin) -> dict[str, int]:
    removed = who.state.svc.clear_cache(name)
    who.audit("/v1/admin/collections/{name}/cache/clear", "cache_clear", 200, collection=name,
              detail={"removed": removed})  # fmt: skip
    return {"removed": removed}


# -- the page -----------------------------------------------------------------------------------


def _admin_from_cookie(state: ApiState, key: str | None) -> Caller | None:
    """The admin behind the page's cookie (audited like an API caller), or ``None``."""
    if not key:
        return None
    try:
        info = state.keys.authenticate(key)
    except RagstackError:
        return None
    if not info.allows("admin"):
        return None
    state.audit.flush()  # the page's figures count every request recorded before it
    return Caller(info, state)


def _to_login() -> RedirectResponse:
    return RedirectResponse("/admin/login", status_code=303)


@page.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"logged_in": False})


@page.post("/login", response_class=HTMLResponse)
def login(request: Request, state: State, key: Annotated[str, Form(max_length=200)]) -> Response:
    if _admin_from_cookie(state, key.strip()) is None:
        return templates.TemplateResponse(
            request, "login.html",
            {"logged_in": False, "error": "that is not a live admin key"}, status_code=401,
        )  # fmt: skip
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", path="/admin")
    return response


@page.post("/logout")
def logout() -> Response:
    response = _to_login()
    response.delete_cookie(COOKIE, path="/admin")
    return response


@page.get("", response_class=HTMLResponse)
def collections_page(
    request: Request, state: State, ragstack_admin: Annotated[str | None, Cookie()] = None
) -> Response:
    if _admin_from_cookie(state, ragstack_admin) is None:
        return _to_login()
    figures = state.svc.collection_figures()
    return templates.TemplateResponse(
        request, "collections.html", {"logged_in": True, "figures": figures}
    )


@page.get("/collections/{name}", response_class=HTMLResponse)
def collection_page(
    request: Request,
    name: str,
    state: State,
    ragstack_admin: Annotated[str | None, Cookie()] = None,
    flash: str | None = None,
) -> Response:
    if _admin_from_cookie(state, ragstack_admin) is None:
        return _to_login()
    svc = state.svc
    try:
        h = svc.collection_health(name)
    except NotFoundError:
        return HTMLResponse("<h1>no such collection</h1>", status_code=404)
    context = {
        "logged_in": True,
        "h": h,
        "flash": flash,
        "chart": latency_chart(h["latency"]),
        "documents": svc.documents(name, limit=200),
    }
    return templates.TemplateResponse(request, "collection.html", context)


def _back(name: str, message: str) -> Response:
    """To the collection's page, with what was done shown at the top."""
    return RedirectResponse(
        f"/admin/collections/{quote(name)}?flash={quote(message)}", status_code=303
    )


@page.post("/collections/{name}/reindex")
def reindex_page(
    name: str, state: State, ragstack_admin: Annotated[str | None, Cookie()] = None
) -> Response:
    who = _admin_from_cookie(state, ragstack_admin)
    if who is None:
        return _to_login()
    added = state.svc.reindex(name)
    who.audit("/admin/collections/{name}/reindex", "reindex", 200, collection=name, detail=added)
    return _back(name, f"re-indexed: {added['dense']} dense, {added['bm25']} BM25 chunks")


@page.post("/collections/{name}/clear-cache")
def clear_cache_page(
    name: str, state: State, ragstack_admin: Annotated[str | None, Cookie()] = None
) -> Response:
    who = _admin_from_cookie(state, ragstack_admin)
    if who is None:
        return _to_login()
    removed = state.svc.clear_cache(name)
    who.audit("/admin/collections/{name}/clear-cache", "cache_clear", 200, collection=name,
              detail={"removed": removed})  # fmt: skip
    return _back(name, f"cache cleared: {removed} entries")


@page.post("/collections/{name}/documents/{document_id}/delete")
def delete_document_page(
    name: str,
    document_id: RowId,
    state: State,
    ragstack_admin: Annotated[str | None, Cookie()] = None,
) -> Response:
    who = _admin_from_cookie(state, ragstack_admin)
    if who is None:
        return _to_login()
    removed = state.svc.delete_document(name, document_id)
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
