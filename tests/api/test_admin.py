"""The admin page (server-rendered) and its JSON twin: login, figures equal to the API's,
re-index, cache clear, document delete; only admin keys get in. The session itself (signing,
cookie flags, CSRF, revocation) is tested in ``test_sessions``."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_api import Api, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made


def login(api: Api) -> str:
    """Logs the client in with the admin key; the session's CSRF token (from the page)."""
    secret = api.admin["Authorization"].removeprefix("Bearer ")
    r = api.client.post("/admin/login", data={"key": secret}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and secret not in cookie
    return csrf_of(api.client.get("/admin").text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def field(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found, element_id
    return found.group(1)


def test_only_admin_keys_log_in(api: Api) -> None:
    assert api.client.get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    for headers in (api.eng, api.writer):
        secret = headers["Authorization"].removeprefix("Bearer ")
        r = api.client.post("/admin/login", data={"key": secret})
        assert r.status_code == 401 and "not a live admin key" in r.text
    assert api.client.get("/v1/admin/collections/kb/health", headers=api.writer).status_code == 403
    csrf = login(api)
    page = api.client.get("/admin")
    assert page.status_code == 200 and 'href="/admin/collections/kb"' in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    api.client.post("/admin/logout", data={"csrf": csrf})
    assert api.client.get("/admin", follow_redirects=False).status_code == 303


def test_page_figures_equal_the_api(api: Api) -> None:
    for q in ("deploy", "canary releases", "salary bands"):
        api.client.post("/v1/search", json={"collection": "kb", "query": q}, headers=api.eng)
    api.client.post("/v1/answer", json={"collection": "kb", "question": "deploy?"},
                    headers=api.eng)  # fmt: skip
    health = api.client.get("/v1/admin/collections/kb/health", headers=api.admin).json()
    login(api)
    html = api.client.get("/admin/collections/kb").text
    assert int(field(html, "documents")) == health["documents"] == 2
    assert int(field(html, "chunks")) == health["chunks"] > 0
    assert int(field(html, "generation")) == health["generation"]
    assert int(field(html, "dense-bytes")) == health["index_bytes"]["dense"] > 0
    assert int(field(html, "bm25-bytes")) == health["index_bytes"]["bm25"] > 0
    assert float(field(html, "ann-recall")) == health["ann"]["recall_at_10"] == 1.0
    assert field(html, "embedder") == health["embedder"] == "hashing-64"
    assert health["latency"]["totals"]["search"]["requests"] == 3
    assert health["latency"]["totals"]["answer"]["requests"] == 1
    assert 'id="latency-chart"' in html
    assert [s["source"] for s in health["ingest_by_source"]]
    assert health["cache"]["lookups"] == 1 and health["cache"]["hit_rate"] == 0.0


def test_actions_reindex_clear_cache_delete(api: Api) -> None:
    before = api.client.get("/v1/admin/collections/kb/health", headers=api.admin).json()
    csrf = {"csrf": login(api)}
    r = api.client.post("/admin/collections/kb/reindex", data=csrf)
    assert r.status_code == 200 and "re-indexed: " in field(r.text, "flash")
    after = api.client.get("/v1/admin/collections/kb/health", headers=api.admin).json()
    assert after["generation"] == before["generation"] + 1
    assert after["chunks"] == before["chunks"] and after["ann"]["recall_at_10"] == 1.0
    assert api.svc.check_index("kb", repair=False).ok
    hits = api.client.post("/v1/search", json={"collection": "kb", "query": "canary"},
                           headers=api.eng).json()["hits"]  # fmt: skip
    assert hits and hits[0]["uri"].endswith("deploy.md")
    r = api.client.post("/admin/collections/kb/clear-cache", data=csrf)
    assert "cache cleared" in field(r.text, "flash")
    doc = api.svc.documents("kb")[0]
    r = api.client.post(f"/admin/collections/kb/documents/{doc.id}/delete", data=csrf)
    assert f"deleted document {doc.id}" in field(r.text, "flash")
    assert int(field(r.text, "documents")) == 1
    actions = {e["action"] for e in api.client.get("/v1/audit", headers=api.admin).json()}
    assert {"reindex", "cache_clear", "delete"} <= actions
    assert api.client.post("/v1/admin/collections/kb/reindex", headers=api.admin).json() == {
        "dense": after["chunks"] - doc.chunk_count,
        "bm25": after["chunks"] - doc.chunk_count,
    }


def wait_for_run(api: Api, status: str, timeout: float = 60.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        run = api.client.get("/v1/admin/collections/kb/reembed", headers=api.admin).json()
        if (run is not None and run["status"] == status) or time.monotonic() > deadline:
            return dict(run or {})
        time.sleep(0.05)


def test_reembed_live_from_the_api_and_the_page(api: Api) -> None:
    """The JSON route starts a live re-embed in the background (admins only); searches keep
    working; the page's button starts the next one and shows its status."""
    route = "/v1/admin/collections/kb/reembed"
    assert api.client.get(route, headers=api.admin).json() is None
    denied = api.client.post(route, json={"embedder": "hashing-32"}, headers=api.writer)
    assert denied.status_code == 403
    bad = api.client.post(route, json={"embedder": "hashing-64"}, headers=api.admin)
    assert bad.status_code == 400 and "already uses" in bad.text
    unknown = api.client.post(route, json={"embedder": "local:nowhere"}, headers=api.admin)
    assert unknown.status_code == 400 and "RAGSTACK_EMBEDDER_MODEL_PATH" in unknown.text
    r = api.client.post(route, json={"embedder": "hashing-32"}, headers=api.admin)
    assert r.status_code == 202 and r.json()["model_id"] == "hashing-32"
    assert not {"owner", "model_path", "collection_id"} & set(r.json())
    run = wait_for_run(api, "completed")
    assert run["report"]["ok"] and run["done"] == run["total"] > 0
    health = api.client.get("/v1/admin/collections/kb/health", headers=api.admin).json()
    assert health["embedder"] == "hashing-32" and health["ann"]["recall_at_10"] == 1.0
    hits = api.client.post("/v1/search", json={"collection": "kb", "query": "canary"},
                           headers=api.eng).json()["hits"]  # fmt: skip
    assert hits and hits[0]["uri"].endswith("deploy.md")
    csrf = {"csrf": login(api)}
    page = api.client.get("/admin/collections/kb").text
    status = html.unescape(field(page, "reembed-status"))
    assert 'id="reembed"' in page and "completed, hashing-64 -> hashing-32" in status
    r = api.client.post("/admin/collections/kb/reembed", data={**csrf, "embedder": "hashing"})
    assert "re-embedding with hashing-64" in field(r.text, "flash")
    assert wait_for_run(api, "completed")["model_id"] == "hashing-64"
    page = api.client.get("/admin/collections/kb").text
    assert field(page, "embedder") == "hashing-64"
    forged = api.client.post("/admin/collections/kb/reembed", data={"embedder": "hashing-32"})
    assert forged.status_code == 403
    actions = [e["action"] for e in api.client.get("/v1/audit", headers=api.admin).json()]
    assert actions.count("reembed") >= 2
