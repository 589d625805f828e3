"""The admin page in a real browser: Debian's headless Chromium driven by Playwright's Python
package (no ``playwright install``), against the live server on a loopback port. It logs in,
opens the collection's health page, checks its figures against the API, re-indexes and sees
it complete, and saves a screenshot to ``.cache/test-artifacts/admin-health.png``. Then the
session: the cookie is not the key, a forged POST (same-origin without the CSRF token, or from
another site) changes nothing, revoking the key ends the session, logout works."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACT = Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts" / "admin-health.png"


def need_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium (scripts/setup.sh installs it)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")


def test_admin_health_page_in_chromium(server: Server) -> None:
    need_chromium()
    from playwright.sync_api import expect, sync_playwright

    def health() -> dict[str, object]:
        r = httpx.get(f"{server.url}/v1/admin/collections/kb/health", headers=server.headers)
        r.raise_for_status()
        data: dict[str, object] = r.json()
        return data

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(f"{server.url}/admin")
            assert page.url.endswith("/admin/login")
            page.fill("#key", "rsk_not_a_key")
            page.click("#login")
            expect(page.locator("#error")).to_contain_text("not a live admin key")
            page.fill("#key", server.secret)
            page.click("#login")
            page.click("a[href='/admin/collections/kb']")
            before = health()
            expect(page.locator("#documents")).to_have_text(str(before["documents"]))
            expect(page.locator("#chunks")).to_have_text(str(before["chunks"]))
            expect(page.locator("#generation")).to_have_text(str(before["generation"]))
            expect(page.locator("#embedder")).to_have_text(str(before["embedder"]))
            ann = before["ann"]
            assert isinstance(ann, dict)
            expect(page.locator("#ann-recall")).to_have_text(str(ann["recall_at_10"]))
            page.click("#reindex")
            expect(page.locator("#flash")).to_contain_text("re-indexed: ")
            after = health()
            assert after["generation"] == int(str(before["generation"])) + 1
            expect(page.locator("#generation")).to_have_text(str(after["generation"]))
            expect(page.locator("#chunks")).to_have_text(str(before["chunks"]))
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            browser.close()
    assert ARTIFACT.stat().st_size > 10_000


def test_admin_session_in_chromium(server: Server) -> None:
    need_chromium()
    from playwright.sync_api import expect, sync_playwright

    made = httpx.post(f"{server.url}/v1/keys", json={"principal": "user:ops", "role": "admin"},
                      headers=server.headers).json()  # fmt: skip
    secret, key_id = made["secret"], made["key"]["key_id"]

    def generation() -> int:
        r = httpx.get(f"{server.url}/v1/admin/collections/kb/health", headers=server.headers)
        return int(r.json()["generation"])

    attack = f"""<html><body><form id="f" method="post"
        action="{server.url}/admin/collections/kb/reindex"><input name="csrf" value="guess">
        </form><script>document.getElementById("f").submit()</script></body></html>"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{server.url}/admin/login")
            page.fill("#key", secret)
            page.click("#login")
            expect(page.locator("#collections")).to_be_visible()
            (cookie,) = [c for c in context.cookies() if c["name"] == "ragstack_admin"]
            assert secret not in cookie["value"] and key_id in _payload(cookie["value"])
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert cookie["path"] == "/admin" and not cookie["secure"]
            assert page.evaluate("document.cookie") == ""  # no script reads it
            before = generation()
            # same-origin, with the cookie, but without the CSRF token: refused
            status = page.evaluate(
                """async () => (await fetch("/admin/collections/kb/reindex",
                   {method: "POST", body: new URLSearchParams({csrf: "guess"})})).status"""
            )
            assert status == 403
            # another site's auto-submitting form: no cookie goes with it, and it is refused
            page.route("http://attacker.test/**", lambda route: route.fulfill(
                body=attack, content_type="text/html"))  # fmt: skip
            page.goto("http://attacker.test/")
            expect(page.locator("h1")).to_contain_text("refused: a request from another site")
            assert page.url == f"{server.url}/admin/collections/kb/reindex"
            assert generation() == before
            # the page's own form carries the token
            page.goto(f"{server.url}/admin/collections/kb")
            page.click("#reindex")
            expect(page.locator("#flash")).to_contain_text("re-indexed: ")
            assert generation() == before + 1
            # revoking the key ends the session at the next request
            httpx.delete(f"{server.url}/v1/keys/{key_id}", headers=server.headers)
            page.reload()
            assert page.url.endswith("/admin/login")
            # and logout ends a live one
            page.fill("#key", server.secret)
            page.click("#login")
            expect(page.locator("#collections")).to_be_visible()
            page.click("#logout")
            assert page.url.endswith("/admin/login")
            assert not [c for c in context.cookies() if c["name"] == "ragstack_admin"]
            page.goto(f"{server.url}/admin")
            assert page.url.endswith("/admin/login")
        finally:
            browser.close()


def _payload(token: str) -> str:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
