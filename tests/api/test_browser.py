"""The admin page in a real browser: Debian's headless Chromium driven by Playwright's Python
package (no ``playwright install``), against the live server on a loopback port. It logs in,
opens the collection's health page, checks its figures against the API, re-indexes and sees
it complete, and saves a screenshot to ``.cache/test-artifacts/admin-health.png``."""

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


def test_admin_health_page_in_chromium(server: Server) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium (scripts/setup.sh installs it)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
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
