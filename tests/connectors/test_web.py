"""WebConnector against a real threading HTTP server on 127.0.0.1 (random port)."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors import (
    ConfigError,
    ErrorKind,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    FetchPolicy,
    WebConnector,
    partition,
)

LOOPBACK = FetchPolicy(allow=("127.0.0.1", "localhost"))  # the test sites live on loopback

HTML = "text/html; charset=utf-8"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    send_length: bool = True


class Site:
    """A loopback web site: ``routes`` by path, ``hits`` counts requests by path."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.other = f"http://localhost:{port}"  # the same server under another host name
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.agents: set[str] = set()

    def url(self, path: str) -> str:
        return self.base + path

    def page(self, path: str, html: str, **kw: object) -> None:
        self.routes[path] = Route(html.encode(), **kw)  # type: ignore[arg-type]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.hits[self.path] += 1
            site.agents.add(self.headers.get("User-Agent", ""))
            route = site.routes.get(self.path, Route(b"not found", 404, "text/plain"))
            if route.delay:
                time.sleep(route.delay)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            for k, v in route.headers.items():
                self.send_header(k, v)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(route.body)  # unless the client gave up (timeout, size limit)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Site(0)))
    web = Site(server.server_address[1])
    server.RequestHandlerClass = _handler(web)
    web.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /private/\n\n"
        b"User-agent: ragstack-connector\nDisallow: /private/\nDisallow: /not-for-us\n",
        content_type="text/plain",
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield web
    server.shutdown()
    server.server_close()


def crawl(conn: WebConnector) -> tuple[dict[str, SourceItem], dict[str, ScanError]]:
    items, errors = partition(conn.scan())
    return {i.uri: i for i in items}, {e.uri: e for e in errors}


def fast(urls: list[str], **kw: object) -> WebConnector:
    """Short timeouts and backoff so failure tests stay quick."""
    opts: dict[str, object] = {
        "timeout": 2.0, "retries": 1, "backoff": 0.01, "policy": LOOPBACK, **kw,
    }  # fmt: skip
    return WebConnector(urls, **opts)  # type: ignore[arg-type]


def test_same_site_crawl_to_depth(site: Site) -> None:
    site.page(
        "/",
        "<html><head><title> Home \n page</title></head><body>"
        "<a href='/a'>a</a> <a href='b'>b</a> <a href='/a#section'>a again</a>"
        f"<a href='{site.other}/x'>other host</a> <a href='mailto:x@example.org'>mail</a>"
        "<a href='https://127.0.0.1:1/other-scheme'>https</a>"
        "<a href='http://[::1'>malformed</a><a href='http://h:port/'>bad port</a></body></html>",
    )
    site.page("/a", "<title>A</title><p>Alpha</p><a href='/deep'>deeper</a>")
    site.page("/b", "<title>B</title><a href='/'>home</a>")
    site.page("/deep", "<title>Deep</title><a href='/deeper'>x</a>")
    site.page("/deeper", "<title>Deeper</title>")
    items, errors = crawl(fast([site.url("/")], max_depth=1))
    assert list(items) == [site.url("/"), site.url("/a"), site.url("/b")] and not errors
    assert items[site.url("/")].title == "Home page"
    assert "/x" not in site.hits and "/deep" not in site.hits, "other host; beyond depth"
    items, _ = crawl(fast([site.url("/")], max_depth=2))
    assert site.url("/deep") in items and site.url("/deeper") not in items
    assert site.hits["/a"] == 2, "each page once per scan (fragment links are the same page)"
    assert site.agents == {"ragstack-connector/0.1"}


def test_start_url_normalized(site: Site) -> None:
    site.page("/", "<title>Home</title>")
    items, _ = crawl(fast([site.base.replace("http", "HTTP") + "#top"]))
    assert list(items) == [site.url("/")]


def test_robots_txt_is_obeyed_before_fetching(site: Site) -> None:
    site.page("/", "<a href='/private/x'>p</a><a href='/not-for-us'>n</a><a href='/ok'>o</a>")
    site.page("/ok", "<title>OK</title>")
    site.page("/private/x", "secret")
    site.page("/not-for-us", "secret")
    items, errors = crawl(fast([site.url("/")], max_depth=1))
    assert set(items) == {site.url("/"), site.url("/ok")}
    assert errors[site.url("/private/x")].kind == ErrorKind.ROBOTS
    assert errors[site.url("/not-for-us")].kind == ErrorKind.ROBOTS, "our own user-agent group"
    assert "/private/x" not in site.hits and "/not-for-us" not in site.hits
    assert site.hits["/robots.txt"] == 1, "once per site and scan"


def test_robots_txt_missing_allows_and_failing_disallows(site: Site) -> None:
    site.page("/", "<title>Home</title>")
    del site.routes["/robots.txt"]  # 404: everything allowed
    items, _ = crawl(fast([site.url("/")]))
    assert list(items) == [site.url("/")]
    site.routes["/robots.txt"] = Route(b"oops", 503, "text/plain")
    items, errors = crawl(fast([site.url("/")]))
    assert not items and site.hits["/"] == 1, "a 5xx robots.txt disallows the whole site"
    err = errors[site.url("/")]
    assert err.kind == ErrorKind.FETCH_ERROR
    assert "robots.txt could not be fetched" in err.reason and "HTTP 503" in err.reason


def test_500_and_404_become_errors_and_the_scan_goes_on(site: Site) -> None:
    site.page("/broken", "boom", status=500)
    site.page("/after", "<title>After</title>")
    items, errors = crawl(fast([site.url("/broken"), site.url("/missing"), site.url("/after")]))
    assert list(items) == [site.url("/after")]
    broken = errors[site.url("/broken")]
    assert broken.kind == ErrorKind.FETCH_ERROR
    assert broken.reason == "server answered HTTP 500 (2 attempts)"
    assert site.hits["/broken"] == 2, "a 5xx is retried"
    assert errors[site.url("/missing")].reason == "server answered HTTP 404"
    assert site.hits["/missing"] == 1, "a 4xx is not"


def test_timeout_becomes_an_error_and_the_scan_goes_on(site: Site) -> None:
    site.page("/slow", "<title>Slow</title>", delay=1.0)
    site.page("/after", "<title>After</title>")
    started = time.monotonic()
    items, errors = crawl(fast([site.url("/slow"), site.url("/after")], timeout=0.2))
    assert time.monotonic() - started < 1.5
    assert list(items) == [site.url("/after")]
    slow = errors[site.url("/slow")]
    assert slow.kind == ErrorKind.FETCH_ERROR
    assert slow.reason == "timed out after 0.2s (2 attempts)"


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    url = f"http://127.0.0.1:{port}/page"
    items, errors = crawl(fast([url], retries=0))
    assert not items and errors[url].kind == ErrorKind.FETCH_ERROR
    assert "could not connect (1 attempt)" in errors[url].reason
    assert "Errno" not in errors[url].reason and "refused" not in errors[url].reason, (
        "generic: the operating system's words are never echoed"
    )


def test_versions_titles_and_no_refetch(site: Site) -> None:
    site.page("/tagged", "<title>T</title>", headers={"ETag": '"v1"'})
    site.page("/untagged", "<h1>No title</h1>")
    site.routes["/notes.txt"] = Route(
        b"plain <a href='/tagged'>not a link</a>", content_type="text/plain"
    )
    conn = fast([site.url("/tagged"), site.url("/untagged"), site.url("/notes.txt")], max_depth=1)
    items, _ = crawl(conn)
    tagged, untagged, notes = (items[site.url(p)] for p in ("/tagged", "/untagged", "/notes.txt"))
    assert tagged.version == 'etag:"v1"'
    assert untagged.version.startswith("sha256:") and untagged.title == "untagged"
    assert notes.mime == "text/plain" and tagged.mime == "text/html"
    assert tagged.metadata["status"] == 200 and tagged.metadata["content_type"] == HTML
    before = site.hits.copy()
    assert untagged.read() == b"<h1>No title</h1>" and notes.read().startswith(b"plain")
    assert site.hits == before, "read() uses the bytes already fetched"
    site.page("/untagged", "<h1>Changed</h1>")
    again, _ = crawl(conn)
    assert again[site.url("/untagged")].version != untagged.version
    assert again[site.url("/tagged")].version == tagged.version


def test_sitemap_index_with_gzip_and_a_broken_child(site: Site) -> None:
    ns = "xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'"
    site.page(
        "/sitemap.xml",
        f"<sitemapindex {ns}><sitemap><loc>{site.url('/pages.xml.gz')}</loc></sitemap>"
        f"<sitemap><loc>{site.url('/gone.xml')}</loc></sitemap>"
        f"<sitemap><loc>{site.url('/more.xml')}</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    pages = (
        f"<urlset {ns} xmlns:image='http://www.google.com/schemas/sitemap-image/1.1'>"
        f"<url><loc> {site.url('/a')} </loc>"
        f"<image:image><image:loc>{site.url('/pic.png')}</image:loc></image:image></url>"
        f"<url><loc>{site.url('/b')}</loc></url><url><loc>http://[bad</loc></url></urlset>"
    )
    site.routes["/pages.xml.gz"] = Route(
        gzip.compress(pages.encode()), content_type="application/gzip"
    )
    site.page(
        "/more.xml",
        f"<urlset {ns}><url><loc>{site.url('/a')}</loc></url></urlset>",
        content_type="application/xml",
    )
    site.page("/a", "<title>A</title><a href='/c'>c</a>")
    site.page("/b", "<title>B</title>")
    items, errors = crawl(WebConnector(sitemap=site.url("/sitemap.xml"), policy=LOOPBACK))
    assert list(items) == [site.url("/a"), site.url("/b")]
    assert errors[site.url("/gone.xml")].reason == "sitemap: server answered HTTP 404"
    assert errors[site.url("/pages.xml.gz")].reason == "sitemap lists 1 malformed URL(s)"
    assert "/pic.png" not in site.hits and "/c" not in site.hits


def test_unusable_sitemap_fails_the_source(site: Site) -> None:
    with pytest.raises(SourceUnavailableError, match="HTTP 404"):
        list(WebConnector(sitemap=site.url("/nope.xml"), policy=LOOPBACK).scan())
    site.page("/html.xml", "<html><body>not a sitemap</body></html>")
    with pytest.raises(SourceUnavailableError, match="not a sitemap"):
        list(WebConnector(sitemap=site.url("/html.xml"), policy=LOOPBACK).scan())


def test_redirects(site: Site) -> None:
    site.page("/a", "<title>A</title>")
    site.page("/old", "", status=301, headers={"Location": "/a"})
    site.page("/away", "", status=302, headers={"Location": f"{site.other}/a"})
    site.page("/sneaky", "", status=302, headers={"Location": "/private/x"})
    site.page("/circle", "", status=302, headers={"Location": "/circle"})
    site.page("/mangled", "", status=302, headers={"Location": "http://[::1/x"})
    urls = [site.url(p) for p in ("/old", "/a", "/away", "/sneaky", "/circle", "/mangled")]
    items, errors = crawl(fast(urls))
    assert list(items) == [site.url("/a")], "the redirect target is the uri, taken once"
    assert site.hits["/a"] == 1
    assert errors[site.url("/away")].kind == ErrorKind.OFF_SITE
    assert errors[site.url("/sneaky")].kind == ErrorKind.ROBOTS
    assert "/private/x" not in site.hits
    assert "more than 5 redirects" in errors[site.url("/circle")].reason
    mangled = errors[site.url("/mangled")]  # httpx refuses the Location header itself
    assert mangled.kind == ErrorKind.FETCH_ERROR and "malformed" in mangled.reason


def test_page_and_size_limits(site: Site) -> None:
    site.page("/", "".join(f"<a href='/p{i}'>{i}</a>" for i in range(10)))
    for i in range(10):
        site.page(f"/p{i}", f"<title>{i}</title>")
    items, _ = crawl(fast([site.url("/")], max_depth=1, max_pages=4))
    assert len(items) == 4 and sum(site.hits[f"/p{i}"] for i in range(10)) == 3
    site.page("/big", "x" * 5000)
    site.page("/big-unannounced", "x" * 5000, send_length=False)
    site.page("/small", "x" * 50)
    urls = [site.url(p) for p in ("/big", "/big-unannounced", "/small")]
    items, errors = crawl(fast(urls, max_bytes=1000))
    assert list(items) == [site.url("/small")]
    assert errors[site.url("/big")].kind == ErrorKind.TOO_LARGE
    assert "5,000 bytes is over the 1,000-byte limit" in errors[site.url("/big")].reason
    assert errors[site.url("/big-unannounced")].kind == ErrorKind.TOO_LARGE


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="at least one URL"):
        WebConnector([])
    with pytest.raises(ConfigError, match="not an http"):
        WebConnector(["ftp://example.org/"])
    with pytest.raises(ConfigError, match="not an http"):
        WebConnector(["/just/a/path"])
    with pytest.raises(ConfigError):
        WebConnector(["http://example.org/"], max_pages=0)
