"""Failed authentications are limited per client address: bad API keys (Bearer or X-API-Key)
and refused admin logins spend from one allowance per address; past it, 429 with Retry-After
before the key is even looked at; successes spend nothing; other addresses are unaffected.
``X-Forwarded-For`` names the client only when the peer is a trusted proxy."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import serve
from tests.api.test_api import bearer, error_of, make_api

BAD = [bearer("rsk_nope_nope"), {"X-API-Key": "rsk_abc_def"}, bearer("not-a-key")]


def test_failed_keys_are_limited_per_address(tmp_path: Path) -> None:
    api = make_api(tmp_path, api_auth_failures_burst=3, api_auth_failures_per_s=0.5)
    a = TestClient(api.client.app, client=("198.51.100.1", 4000))
    b = TestClient(api.client.app, client=("198.51.100.2", 4000))
    for _ in range(20):  # successes spend nothing
        assert a.get("/v1/collections", headers=api.eng).status_code == 200
    assert [a.get("/v1/collections", headers=h).status_code for h in BAD] == [401, 401, 401]
    r = a.get("/v1/collections", headers=BAD[0])
    assert r.status_code == 429 and error_of(r)["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    assert "failed authentications" in str(error_of(r)["message"])
    # refused before the key is looked at: a good key from that address waits too
    assert a.get("/v1/collections", headers=api.eng).status_code == 429
    assert a.post("/v1/search", json={"collection": "kb", "query": "x"},
                  headers=api.eng).status_code == 429  # fmt: skip
    # another address is not affected, and health needs no key
    assert b.get("/v1/collections", headers=api.eng).status_code == 200
    assert b.get("/v1/collections", headers=BAD[1]).status_code == 401
    assert a.get("/healthz").status_code == 200
    time.sleep(2.1)  # the allowance refills at 0.5 per second: one more try
    assert a.get("/v1/collections", headers=api.eng).status_code == 200
    assert a.get("/v1/collections", headers=BAD[2]).status_code == 401
    assert a.get("/v1/collections", headers=BAD[2]).status_code == 429


def test_refused_logins_spend_the_same_allowance(tmp_path: Path) -> None:
    api = make_api(tmp_path, api_auth_failures_burst=3, api_auth_failures_per_s=0.5)
    page = TestClient(api.client.app, client=("198.51.100.3", 4000))
    reader = api.eng["Authorization"].removeprefix("Bearer ")
    admin = api.admin["Authorization"].removeprefix("Bearer ")
    # a live key that is no admin key is a refused login as much as a wrong key
    codes = [page.post("/admin/login", data={"key": k}).status_code
             for k in ("rsk_x_y", reader, "nonsense")]  # fmt: skip
    assert codes == [401, 401, 401]
    r = page.post("/admin/login", data={"key": admin}, follow_redirects=False)
    assert r.status_code == 429 and "too many failed logins" in r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    assert page.get("/v1/collections", headers=api.admin).status_code == 429  # one allowance
    fresh = TestClient(api.client.app, client=("198.51.100.4", 4000))
    assert fresh.post("/admin/login", data={"key": admin},
                      follow_redirects=False).status_code == 303  # fmt: skip


def test_ipv6_clients_are_counted_per_64_and_forwarded_addresses_only_from_proxies(
    tmp_path: Path,
) -> None:
    api = make_api(tmp_path / "a", api_auth_failures_burst=2, api_auth_failures_per_s=0.01)
    app = api.client.app
    one = TestClient(app, client=("2001:db8:1:2::1", 4000))
    same = TestClient(app, client=("2001:db8:1:2:ffff::9", 4000))  # the same /64
    other = TestClient(app, client=("2001:db8:1:3::1", 4000))
    assert [one.get("/v1/collections", headers=BAD[0]).status_code for _ in range(2)] == [401] * 2
    assert same.get("/v1/collections", headers=BAD[0]).status_code == 429
    assert other.get("/v1/collections", headers=BAD[0]).status_code == 401
    # without trusted proxies, X-Forwarded-For is the caller's say-so: ignored
    liar = TestClient(app, client=("192.0.2.50", 4000))
    for n in range(2):
        liar.get("/v1/collections", headers={**BAD[0], "X-Forwarded-For": f"192.0.2.{n}"})
    r = liar.get("/v1/collections", headers={**BAD[0], "X-Forwarded-For": "192.0.2.99"})
    assert r.status_code == 429
    # from a trusted proxy it names the client: each client behind it has its own allowance
    proxied = make_api(tmp_path / "b", api_auth_failures_burst=2, api_auth_failures_per_s=0.01,
                       api_trusted_proxies=("127.0.0.1",))  # fmt: skip
    proxy = TestClient(proxied.client.app, client=("127.0.0.1", 4000))

    def via(client_ip: str) -> int:
        headers = {**BAD[0], "X-Forwarded-For": f"{client_ip}, 127.0.0.1"}
        return proxy.get("/v1/collections", headers=headers).status_code

    assert [via("192.0.2.7") for _ in range(3)] == [401, 401, 429]
    assert via("192.0.2.8") == 401
    good = {**proxied.eng, "X-Forwarded-For": "192.0.2.7"}
    assert proxy.get("/v1/collections", headers=good).status_code == 429


@pytest.mark.slow
def test_a_live_ragstack_serve_counts_the_socket_peer(tmp_path: Path) -> None:
    """Under ``ragstack serve`` (uvicorn's own trust of loopback proxies off) a loopback client
    cannot pose as others with X-Forwarded-For."""
    limits = {"RAGSTACK_API_AUTH_FAILURES_BURST": "2", "RAGSTACK_API_AUTH_FAILURES_PER_S": "0.01"}
    with serve(tmp_path, cli=True, env=limits) as api:
        url = f"{api.url}/v1/collections"
        codes = [
            httpx.get(url, headers={**BAD[0], "X-Forwarded-For": f"192.0.2.{n}"}).status_code
            for n in range(3)
        ]
        assert codes == [401, 401, 429]
        r = httpx.get(url, headers={**api.headers, "X-Forwarded-For": "192.0.2.200"})
        assert r.status_code == 429 and r.headers["Retry-After"]
        assert httpx.get(f"{api.url}/healthz").status_code == 200
