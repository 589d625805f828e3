"""What the server-rendered pages share (the admin page, the chat page): the templates, the
headers every page response carries, signing in with a key, and the caller behind a page's
request or form.

A page runs on a signed, expiring session (``ragstack.api.sessions``): the cookie never holds
the key, every request re-reads the key (revoked or demoted: the session ends at once), and
every state-changing request carries the session's CSRF token and does not come from another
site. Failed sign-ins count against the client address like failed API keys.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ragstack.api.deps import ApiState, Caller, authenticate, client_address
from ragstack.api.sessions import Sessions, cross_site, csrf_ok
from ragstack.errors import RateLimitedError, UnauthenticatedError

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# what every page response carries: never framed (clickjacking), never cached
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; form-action 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


def headed(response: Response, headers: dict[str, str] | None = None) -> Response:
    response.headers.update(headers or PAGE_HEADERS)
    return response


def render(
    request: Request, name: str, context: dict[str, Any], status: int = 200,
    headers: dict[str, str] | None = None, page_headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    response = templates.TemplateResponse(
        request, name, context, status_code=status, headers=headers
    )
    return headed(response, page_headers)


def refused(message: str, status: int = 403, headers: dict[str, str] | None = None) -> Response:
    return headed(HTMLResponse(f"<h1>{escape(message)}</h1>", status_code=status), headers)


def redirect(url: str, headers: dict[str, str] | None = None) -> Response:
    return headed(RedirectResponse(url, status_code=303), headers)


def page_caller(request: Request, state: ApiState, sessions: Sessions) -> Caller | None:
    """The key behind the request's session of ``sessions`` (audited like an API caller), or
    ``None``."""
    found = sessions.current(request, state.keys)
    if found is None:
        return None
    session, key = found
    return Caller(key, state, session=session,
                  request_id=getattr(request.state, "request_id", None))  # fmt: skip


def page_action(
    request: Request, state: ApiState, sessions: Sessions, csrf: str | None, login: str,
    headers: dict[str, str] | None = None,
) -> Caller | Response:  # fmt: skip
    """The caller behind one of a page's POSTs, or the response refusing it: to ``login``
    without a session; 403 from another site or without the session's CSRF token."""
    if cross_site(request):
        return refused("refused: a request from another site", headers=headers)
    who = page_caller(request, state, sessions)
    if who is None:
        return redirect(login, headers)
    if who.session is None or not csrf_ok(who.session, csrf):
        return refused("refused: the form did not carry this session's CSRF token",
                       headers=headers)  # fmt: skip
    return who


def sign_in(
    request: Request, state: ApiState, presented: str, sessions: Sessions, *,
    template: str, home: str, what: str, route: str, headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """Start a session of ``sessions`` for the live key ``presented`` (of its role) and go
    ``home``; else ``template`` again with the reason (401, or 429 past the failed-login
    limit of the client's address)."""
    if cross_site(request):
        return refused("refused: a login from another site", headers=headers)
    try:
        info = authenticate(state, request, presented.strip())
        if not info.allows(sessions.role):
            state.auth_failures.spend(client_address(request))
            raise UnauthenticatedError(f"not {what}")
    except RateLimitedError as exc:
        wait = max(1, round(exc.retry_after + 0.499))
        return render(request, template,
                      {"logged_in": False, "error": f"too many failed logins from your "
                       f"address: try again in {wait} s"},
                      status=429, headers={"Retry-After": str(wait)},
                      page_headers=headers)  # fmt: skip
    except UnauthenticatedError:
        return render(request, template,
                      {"logged_in": False, "error": f"that is not a live {what}"},
                      status=401, page_headers=headers)  # fmt: skip
    response = RedirectResponse(home, status_code=303)
    sessions.start(request, response, info)
    Caller(info, state, request_id=getattr(request.state, "request_id", None)).audit(
        route, "login", 303
    )
    return headed(response, headers)
