"""The admin page's sessions: a signed, expiring token that names the key (never holds it),
cookie flags (Secure over https, and behind a trusted proxy only), CSRF tokens on every action,
cross-site requests refused, revocation in force on the next request, logout."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragstack.access import KeyInfo
from ragstack.api.sessions import Sessions, cross_site
from tests.api.test_api import Api, make_api

COOKIE = "ragstack_admin"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made


def secret_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def log_in(client: TestClient, secret: str) -> str:
    """The Set-Cookie header of a successful login."""
    r = client.post("/admin/login", data={"key": secret}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["set-cookie"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def generation(api: Api) -> int:
    return int(api.svc.collection("kb").generation)


def test_the_cookie_is_a_signed_session_not_the_key(api: Api) -> None:
    secret = secret_of(api.admin)
    set_cookie = log_in(api.client, secret)
    token = api.client.cookies[COOKIE]
    # rsk_<key id>_<secret part>: the secret part may itself hold "_" (urlsafe base64)
    key_id, _, part = secret.removeprefix("rsk_").partition("_")
    assert secret not in set_cookie and part not in set_cookie and part not in token
    flags = [f.strip().lower() for f in set_cookie.split(";")]
    assert {"httponly", "samesite=strict", "path=/admin", "max-age=28800"} <= set(flags)
    assert "secure" not in flags  # plain http here
    version, payload, _ = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert version == "v1" and body["kid"] == key_id and body["role"] == "admin"
    assert body["aud"] == "admin" and len(body["csrf"]) >= 40
    assert abs(body["exp"] - (datetime.now(UTC).timestamp() + 8 * 3600)) < 60
    assert csrf_of(api.client.get("/admin").text) == body["csrf"]


def test_secure_cookies_over_https_and_from_trusted_proxies_only(tmp_path: Path) -> None:
    api = make_api(tmp_path / "a")
    secret = secret_of(api.admin)
    https = TestClient(api.client.app, base_url="https://testserver")
    assert "secure" in log_in(https, secret).lower()
    # X-Forwarded-Proto from an address nobody trusts is ignored
    spoofed = TestClient(api.client.app, client=("203.0.113.7", 5000))
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}
    r = spoofed.post("/admin/login", data={"key": secret}, headers=forwarded,
                     follow_redirects=False)  # fmt: skip
    assert "secure" not in r.headers["set-cookie"].lower()
    proxied = make_api(tmp_path / "b", api_trusted_proxies=("10.0.0.0/8",))
    proxy = TestClient(proxied.client.app, client=("10.1.2.3", 5000))
    r = proxy.post("/admin/login", data={"key": secret_of(proxied.admin)}, headers=forwarded,
                   follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()


def test_every_action_needs_this_session_csrf_token_and_this_site(api: Api) -> None:
    c = api.client
    log_in(c, secret_of(api.admin))
    csrf = csrf_of(c.get("/admin/collections/kb").text)
    other = TestClient(c.app)  # another session of the same key has another token
    log_in(other, secret_of(api.admin))
    foreign = csrf_of(other.get("/admin").text)
    assert foreign != csrf
    before = generation(api)
    for data, headers in (
        ({}, {}),
        ({"csrf": ""}, {}),
        ({"csrf": csrf[:-2] + "xy"}, {}),
        ({"csrf": foreign}, {}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": csrf}, {"Origin": "https://evil.example"}),
    ):
        r = c.post("/admin/collections/kb/reindex", data=data, headers=headers,
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 403, (data, headers, r.status_code)
    doc = api.svc.documents("kb")[0]
    assert c.post(f"/admin/collections/kb/documents/{doc.id}/delete",
                  follow_redirects=False).status_code == 403  # fmt: skip
    assert c.post("/admin/collections/kb/clear-cache", follow_redirects=False).status_code == 403
    assert c.post("/admin/logout", follow_redirects=False).status_code == 403
    assert generation(api) == before and len(api.svc.documents("kb")) == 2
    same_site = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
    r = c.post("/admin/collections/kb/reindex", data={"csrf": csrf}, headers=same_site)
    assert r.status_code == 200 and generation(api) == before + 1
    # a login posted from another site is refused too (login CSRF)
    r = TestClient(c.app).post("/admin/login", data={"key": secret_of(api.admin)},
                               headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert r.status_code == 403


def test_revoking_the_key_ends_its_sessions_on_the_next_request(api: Api) -> None:
    made = api.client.post("/v1/keys", json={"principal": "user:ops", "role": "admin"},
                           headers=api.admin).json()  # fmt: skip
    log_in(api.client, made["secret"])
    csrf = csrf_of(api.client.get("/admin").text)
    assert api.client.get("/admin", follow_redirects=False).status_code == 200
    api.client.delete(f"/v1/keys/{made['key']['key_id']}", headers=api.admin)
    r = api.client.get("/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    before = generation(api)
    r = api.client.post("/admin/collections/kb/reindex", data={"csrf": csrf},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and generation(api) == before


def test_logout_clears_the_cookie(api: Api) -> None:
    log_in(api.client, secret_of(api.admin))
    csrf = csrf_of(api.client.get("/admin").text)
    r = api.client.post("/admin/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert COOKIE not in api.client.cookies
    assert api.client.get("/admin", follow_redirects=False).status_code == 303
    rows = api.client.get("/v1/audit", headers=api.admin).json()
    assert [r["action"] for r in rows[:2]] == ["logout", "login"]


def _key(role: str = "admin") -> KeyInfo:
    return KeyInfo("k1", "", "user:a", (), role, None, datetime.now(UTC), None)  # type: ignore[arg-type]


def _sessions(secret: bytes = b"s" * 32, audience: str = "admin") -> Sessions:
    return Sessions(secret, audience=audience, cookie="c", path="/admin", role="admin",
                    lifetime_s=600)  # fmt: skip


def test_tokens_that_are_forged_tampered_expired_or_for_another_page_are_refused() -> None:
    sessions = _sessions()
    token, session = sessions.issue(_key(), now=1000.0)
    assert sessions.read(token, now=1001.0) == session and session.expires_at == 1600
    assert sessions.read(token, now=1600.0) is None  # expired
    version, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for changed in ({**body, "kid": "k2"}, {**body, "exp": 10**10}, {**body, "role": "admin2"}):
        forged = base64.urlsafe_b64encode(json.dumps(changed).encode()).decode().rstrip("=")
        assert sessions.read(f"{version}.{forged}.{signature}", now=1001.0) is None
    flipped = signature[:-1] + ("B" if signature[-1] == "A" else "A")
    assert sessions.read(f"{version}.{payload}.{flipped}", now=1001.0) is None
    assert sessions.read(f"{version}.{payload}.", now=1001.0) is None
    assert sessions.read("v2." + token[3:], now=1001.0) is None
    assert _sessions(b"t" * 32).read(token, now=1001.0) is None  # another secret
    assert _sessions(audience="chat").read(token, now=1001.0) is None  # another page
    assert sessions.read("", now=1001.0) is None and sessions.read("x" * 5000) is None
    with pytest.raises(Exception, match="needs a admin key"):
        sessions.issue(_key("reader"))
    with pytest.raises(ValueError):
        _sessions(b"short")


def test_cross_site_is_judged_by_fetch_metadata_then_origin(api: Api) -> None:
    from starlette.requests import Request

    def req(headers: dict[str, str]) -> Request:
        raw = [(k.lower().encode(), v.encode()) for k, v in {"host": "h:8", **headers}.items()]
        return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})

    assert not cross_site(req({}))
    assert not cross_site(req({"Sec-Fetch-Site": "same-origin", "Origin": "http://x"}))
    assert cross_site(req({"Sec-Fetch-Site": "same-site"}))
    assert not cross_site(req({"Origin": "http://h:8"}))
    assert cross_site(req({"Origin": "http://h:9"})) and cross_site(req({"Origin": "null"}))
