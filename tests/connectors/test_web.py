"""WebConnector against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, cast

import pytest

from connectors import ScanError, SourceItem, WebConnector

PAGES = {
    "/": b"<html><title>Home</title><a href='/a'>a</a> <a href='/private/x'>p</a>"
    b"<a href='http://elsewhere.invalid/z'>off-site</a><a href='/broken'>b</a></html>",
    "/a": b"<html><title>A</title><p>Alpha page.</p><a href='/deep'>deeper</a></html>",
    "/deep": b"<html><title>Deep</title><a href='/deeper'>x</a></html>",
    "/deeper": b"<html><title>Deeper</title></html>",
    "/private/x": b"<html>secret</html>",
    "/robots.txt": b"User-agent: *\nDisallow: /private/\n",
}


class Handler(BaseHTTPRequestHandler):
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        address = cast(tuple[str, int], self.server.server_address)
        base = f"http://127.0.0.1:{address[1]}"
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/broken":
            self.send_response(500)
            self.end_headers()
            return
        if self.path in ("/sitemap.xml", "/sitemap-pages.xml"):
            body = (
                f"<sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                f"<sitemap><loc>{base}/sitemap-pages.xml</loc></sitemap></sitemapindex>"
                if self.path == "/sitemap.xml"
                else f"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                f"<url><loc>{base}/a</loc></url><url><loc>{base}/deep</loc></url>"
                f"</urlset>"
            ).encode()
            self._ok(body, "application/xml")
            return
        page = PAGES.get(self.path)
        if page is None:
            self.send_response(404)
            self.end_headers()
            return
        self._ok(
            page,
            "text/plain" if self.path.endswith(".txt") else "text/html",
            etag='"v1"' if self.path == "/a" else None,
        )

    def _ok(self, body: bytes, mime: str, etag: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"{mime}; charset=utf-8")
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.hits = {}
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def split(scan: object) -> tuple[dict[str, SourceItem], dict[str, ScanError]]:
    got = list(scan)  # type: ignore[call-overload]
    return (
        {i.uri: i for i in got if isinstance(i, SourceItem)},
        {e.uri: e for e in got if isinstance(e, ScanError)},
    )


def test_crawl_depth_robots_and_errors(site: str) -> None:
    web = WebConnector([f"{site}/"], max_depth=2, retries=1, backoff=0.01)
    items, errors = split(web.scan())
    assert set(items) == {f"{site}/", f"{site}/a", f"{site}/deep"}, "depth 2, same site only"
    assert errors[f"{site}/private/x"].kind == "robots"
    assert errors[f"{site}/broken"].kind == "fetch_error"
    assert "500" in errors[f"{site}/broken"].reason
    assert Handler.hits["/broken"] == 2, "a 5xx is retried"
    assert "/private/x" not in Handler.hits, "robots.txt is obeyed before fetching"
    assert items[f"{site}/a"].version == 'etag:"v1"'
    assert items[f"{site}/"].version.startswith("sha256:")
    assert items[f"{site}/a"].title == "A" and b"Alpha page." in items[f"{site}/a"].read()


def test_sitemap_index(site: str) -> None:
    items, errors = split(WebConnector(sitemap=f"{site}/sitemap.xml").scan())
    assert set(items) == {f"{site}/a", f"{site}/deep"} and not errors


def test_timeout_is_reported_and_scan_goes_on(site: str) -> None:
    web = WebConnector([f"{site}/slow", f"{site}/a"], timeout=0.3, retries=1, backoff=0.01)
    items, errors = split(web.scan())
    assert set(items) == {f"{site}/a"}
    assert errors[f"{site}/slow"].kind == "fetch_error"
    assert "timed out" in errors[f"{site}/slow"].reason


def test_unreachable_server_is_an_error_not_a_crash() -> None:
    web = WebConnector(["http://127.0.0.1:9/nothing"], timeout=0.5, retries=0)
    _items, errors = split(web.scan())
    assert errors["http://127.0.0.1:9/nothing"].kind == "fetch_error"
