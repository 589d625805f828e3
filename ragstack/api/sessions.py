"""Signed, expiring browser sessions for the server-rendered pages (the admin page; a reader's
chat page can take another ``Sessions`` with its own audience, path and role).

Logging in with an API key starts a session; the cookie never holds the key. It holds

    v1.<payload>.<signature>
        payload = base64url(JSON {aud, kid, role, exp, csrf})
        signature = base64url(HMAC-SHA256(secret, "v1." + aud + "." + payload))

where ``kid`` is the key's public id, ``exp`` the expiry (Unix seconds,
``RAGSTACK_API_SESSION_TTL_S`` after login), ``csrf`` a random token, and the secret is
``Store.secret("sessions")``: 32 random bytes in SQL that every API process shares, so any
replica accepts any replica's session. The audience (``aud``) keeps one page's session from
opening another's.

* Cookie: ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's request carries
  it), ``Path`` scoped to the page, ``Max-Age`` the lifetime, and ``Secure`` when the request came
  over https (behind a proxy: ``X-Forwarded-Proto``, believed only from
  ``RAGSTACK_API_TRUSTED_PROXIES``).
* Every request re-reads the key by id: a revoked key, or one whose role no longer suffices, ends
  its sessions on the next request.
* Every state-changing request (a POST) carries the session's CSRF token in a hidden form field,
  compared in constant time, and must not come from another site (``Sec-Fetch-Site``, ``Origin``).
* Logout clears the cookie. There is no server-side session store, so a copied cookie stays valid
  until it expires or its key is revoked (revoking the key is the way to end every session).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from ragstack.access import KeyInfo, Keys, Role
from ragstack.errors import UnauthenticatedError

VERSION = "v1"


@dataclass(frozen=True)
class Session:
    key_id: str
    role: Role
    expires_at: int  # Unix seconds
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Sessions of one page: its cookie name, path, audience, the role it needs, the lifetime."""

    def __init__(
        self,
        secret: bytes,
        *,
        audience: str,
        cookie: str,
        path: str,
        role: Role,
        lifetime_s: float,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("a session secret needs at least 32 bytes")
        self._secret = secret
        self.audience, self.cookie, self.path, self.role = audience, cookie, path, role
        self.lifetime_s = lifetime_s

    # -- tokens ----------------------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        message = f"{VERSION}.{self.audience}.{payload}".encode("ascii")
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def issue(self, key: KeyInfo, *, now: float | None = None) -> tuple[str, Session]:
        """A signed token for ``key`` (which must have this page's role) and what it holds."""
        key.require(self.role)
        now = time.time() if now is None else now
        session = Session(key.key_id, key.role, int(now + self.lifetime_s),
                          secrets.token_urlsafe(32))  # fmt: skip
        body = {"aud": self.audience, "kid": session.key_id, "role": session.role,
                "exp": session.expires_at, "csrf": session.csrf}  # fmt: skip
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{VERSION}.{payload}.{self._sign(payload)}", session

    def read(self, token: str | None, *, now: float | None = None) -> Session | None:
        """What a token holds, or ``None`` if it is not one we signed for this audience, or has
        expired. (The key it names is not checked here: see ``current``.)"""
        if not token or len(token) > 4096:
            return None
        version, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if version != VERSION or not payload or not signature:
            return None
        if not hmac.compare_digest(signature.encode("ascii", "replace"),
                                   self._sign(payload).encode("ascii")):  # fmt: skip
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(str(body["kid"]), body["role"], int(body["exp"]), str(body["csrf"]))
        except (ValueError, KeyError, TypeError):  # signed by us, so only a bug lands here
            return None
        if body.get("aud") != self.audience or session.role not in ("reader", "writer", "admin"):
            return None
        if session.expires_at <= (time.time() if now is None else now):
            return None
        return session

    # -- requests ----------------------------------------------------------------------------------

    def current(self, request: Request, keys: Keys) -> tuple[Session, KeyInfo] | None:
        """The request's live session and its key (re-read now: revocation is in force at once),
        or ``None``."""
        session = self.read(request.cookies.get(self.cookie))
        if session is None:
            return None
        try:
            key = keys.live(session.key_id)
        except UnauthenticatedError:
            return None
        if not key.allows(self.role):
            return None
        return session, key

    def start(self, request: Request, response: Response, key: KeyInfo) -> Session:
        """Log ``key`` in: the session cookie on ``response``."""
        token, session = self.issue(key)
        response.set_cookie(
            self.cookie,
            token,
            max_age=int(self.lifetime_s),
            path=self.path,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return session

    def end(self, request: Request, response: Response) -> None:
        """Log out: the cookie cleared (with the attributes it was set with)."""
        response.delete_cookie(
            self.cookie,
            path=self.path,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a form carried the session's CSRF token (constant-time comparison)."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), session.csrf.encode("ascii"))


def cross_site(request: Request) -> bool:
    """Whether the browser says this request came from another site: ``Sec-Fetch-Site`` (every
    current browser sends it), else an ``Origin`` whose host is not this one."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()
