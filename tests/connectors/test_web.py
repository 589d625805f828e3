"""WebConnector against a real threading HTTP server on 127.0.0.1 (random port)."""

from __future__ import annotations

import contextlib
import gzip
import os
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
    FetchPolicy,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    WebConnector,
    partition,
)
from evals.bench_api import rss_mb
from evals.bombs import gzip_bomb

LOOPBACK = FetchPolicy(allow=("127.0.0.1", "localhost"))  # the test sites live on loopback

HTML = "text/html; charset=utf-8"
NS = "xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    send_length: bool = True
    trickle: float = 0.0  # seconds between 100-byte pieces of the body


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
                if not route.trickle:
                    self.wfile.write(route.body)  # unless the client gave up (timeout, limit)
                for i in range(0, len(route.body) if route.trickle else 0, 100):
                    self.wfile.write(route.body[i : i + 100])
                    self.wfile.flush()
                    time.sleep(route.trickle)

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
    site.page(
        "/sitemap.xml",
        f"<sitemapindex {NS}><sitemap><loc>{site.url('/pages.xml.gz')}</loc></sitemap>"
        f"<sitemap><loc>{site.url('/gone.xml')}</loc></sitemap>"
        f"<sitemap><loc>{site.url('/more.xml')}</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    pages = (
        f"<urlset {NS} xmlns:image='http://www.google.com/schemas/sitemap-image/1.1'>"
        f"<url><loc> {site.url('/a')} </loc>"
        f"<image:image><image:loc>{site.url('/pic.png')}</image:loc></image:image></url>"
        f"<url><loc>{site.url('/b')}</loc></url><url><loc>http://[bad</loc></url></urlset>"
    )
    site.routes["/pages.xml.gz"] = Route(
        gzip.compress(pages.encode()), content_type="application/gzip"
    )
    site.page(
        "/more.xml",
        f"<urlset {NS}><url><loc>{site.url('/a')}</loc></url></urlset>",
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


def test_the_default_policy_fetches_no_loopback_address(site: Site) -> None:
    site.page("/", "<title>Home</title>")
    items, errors = crawl(WebConnector([site.url("/"), site.other + "/"], retries=0))
    assert not items and not site.hits, "not even robots.txt was asked for"
    assert errors[site.url("/")].kind == ErrorKind.REFUSED
    assert errors[site.url("/")].reason == "refused: 127.0.0.1 is a loopback address"
    assert errors[site.other + "/"].reason == "refused: localhost is a loopback name"


def test_encoded_pages_are_decoded_and_a_gzip_bomb_is_too_large(site: Site) -> None:
    text = "<title>Zipped</title><p>" + "compressible words " * 500 + "</p>"
    site.routes["/zipped"] = Route(
        gzip.compress(text.encode()), headers={"Content-Encoding": "gzip"}
    )
    site.routes["/bomb"] = Route(gzip_bomb(1024), headers={"Content-Encoding": "gzip"})
    before = rss_mb(os.getpid())
    items, errors = crawl(fast([site.url("/zipped"), site.url("/bomb")], max_bytes=1 << 20))
    assert items[site.url("/zipped")].read() == text.encode()
    assert items[site.url("/zipped")].title == "Zipped"
    bomb = errors[site.url("/bomb")]
    assert bomb.kind == ErrorKind.TOO_LARGE and "once decompressed" in bomb.reason
    assert rss_mb(os.getpid()) - before < 48, "a 1 GiB bomb was never inflated"


def test_sitemap_bombs_are_too_large(site: Site) -> None:
    site.routes["/bomb.xml.gz"] = Route(gzip_bomb(256), content_type="application/gzip")
    site.page(
        "/index.xml",
        f"<sitemapindex {NS}><sitemap><loc>{site.url('/bomb.xml.gz')}</loc></sitemap>"
        f"<sitemap><loc>{site.url('/pages.xml')}</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    site.page(
        "/pages.xml",
        f"<urlset {NS}><url><loc>{site.url('/a')}</loc></url></urlset>",
        content_type="application/xml",
    )
    site.page("/a", "<title>A</title>")
    before = rss_mb(os.getpid())
    items, errors = crawl(WebConnector(sitemap=site.url("/index.xml"), policy=LOOPBACK))
    assert list(items) == [site.url("/a")]
    bomb = errors[site.url("/bomb.xml.gz")]
    assert bomb.kind == ErrorKind.TOO_LARGE and "52,428,800-byte limit" in bomb.reason
    with pytest.raises(SourceUnavailableError, match="limit"):
        list(WebConnector(sitemap=site.url("/bomb.xml.gz"), policy=LOOPBACK).scan())
    detected = fast([site.url("/bomb.xml.gz")], detect_sitemaps=True, max_bytes=1 << 20)
    _, errors = crawl(detected)
    assert errors[site.url("/bomb.xml.gz")].kind == ErrorKind.TOO_LARGE
    assert rss_mb(os.getpid()) - before < 96


def test_a_sitemap_lists_only_its_own_site(site: Site) -> None:
    site.page(
        "/sitemap.xml",
        f"<urlset {NS}><url><loc>{site.url('/a')}</loc></url>"
        f"<url><loc>{site.other}/foreign</loc></url>"
        "<url><loc>http://169.254.169.254/latest/meta-data/</loc></url></urlset>",
        content_type="application/xml",
    )
    site.page("/a", "<title>A</title>")
    items, errors = crawl(WebConnector(sitemap=site.url("/sitemap.xml"), policy=LOOPBACK))
    assert list(items) == [site.url("/a")] and "/foreign" not in site.hits
    off = errors[site.url("/sitemap.xml")]
    assert off.kind == ErrorKind.OFF_SITE and "2 URL(s) of other sites" in off.reason


def test_start_urls_that_are_sitemaps_are_read_as_sitemaps(site: Site) -> None:
    site.page(
        "/map",
        f"<urlset {NS}><url><loc>{site.url('/a')}</loc></url></urlset>",
        content_type="text/xml",
    )
    site.page("/feed.xml", "<rss><channel><title>News</title></channel></rss>",
              content_type="application/rss+xml")  # fmt: skip
    site.page("/a", "<title>A</title>")
    items, errors = crawl(fast([site.url("/map"), site.url("/feed.xml")], detect_sitemaps=True))
    assert set(items) == {site.url("/a"), site.url("/feed.xml")} and not errors
    items, _ = crawl(fast([site.url("/map")]))
    assert list(items) == [site.url("/map")], "without detect_sitemaps a sitemap is a page"


def test_robots_txt_as_rfc_9309_reads_it(site: Site) -> None:
    site.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /\n\n"
        b"User-agent: Ragstack-Connector\n"
        b"Disallow: /*.pdf$\nDisallow: /docs/\nAllow: /docs/public/\n"
        b"Allow: /tie\nDisallow: /tie\n",
        content_type="text/plain",
    )
    paths = ["/a.pdf", "/a.pdf?x=1", "/docs/x", "/docs/public/x", "/tie", "/other"]
    for p in paths:
        site.page(p, "<title>t</title>")  # routes match the path with its query
    items, errors = crawl(fast([site.url(p) for p in paths]))
    denied = {u.removeprefix(site.base) for u, e in errors.items() if e.kind == ErrorKind.ROBOTS}
    assert denied == {"/a.pdf", "/docs/x"}, "wildcard with $, longest match"
    assert {u.removeprefix(site.base) for u in items} == {
        "/a.pdf?x=1", "/docs/public/x", "/tie", "/other",
    }, "$ anchors the end; the longer allow wins; an allow wins a tie; our group only"  # fmt: skip


def test_robots_txt_redirects_across_sites_under_the_policy(site: Site) -> None:
    site.page("/", "<title>Home</title>")
    site.page("/private/x", "<title>P</title>")
    site.routes["/robots.txt"] = Route(status=301, headers={"Location": f"{site.other}/rules"})
    site.routes["/rules"] = Route(
        b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    items, errors = crawl(fast([site.url("/"), site.url("/private/x")]))
    assert list(items) == [site.url("/")] and errors[site.url("/private/x")].kind == "robots"
    assert site.hits["/rules"] == 1
    site.routes["/robots.txt"] = Route(status=302, headers={"Location": "http://127.0.0.3:9/r"})
    items, errors = crawl(fast([site.url("/")]))
    assert not items and errors[site.url("/")].kind == ErrorKind.REFUSED
    assert errors[site.url("/")].reason == "refused: 127.0.0.3 is a loopback address"


def test_a_slow_drip_is_abandoned_at_the_deadline(site: Site) -> None:
    site.routes["/drip"] = Route(b"x" * 2000, trickle=0.05)
    policy = FetchPolicy(allow=("127.0.0.1",), deadline=0.3)
    started = time.monotonic()
    _, errors = crawl(fast([site.url("/drip")], policy=policy))
    assert errors[site.url("/drip")].reason == "took too long: download abandoned"
    assert time.monotonic() - started < 2


def test_sitemap_fetches_count_against_the_page_limit(site: Site) -> None:
    children = "".join(f"<sitemap><loc>{site.url(f'/s{i}.xml')}</loc></sitemap>" for i in range(9))
    site.page("/index.xml", f"<sitemapindex {NS}>{children}</sitemapindex>")
    for i in range(9):
        site.page(f"/s{i}.xml", f"<urlset {NS}></urlset>", content_type="application/xml")
    _, errors = crawl(WebConnector(sitemap=site.url("/index.xml"), max_pages=4, policy=LOOPBACK))
    assert sum(site.hits[f"/s{i}.xml"] for i in range(9)) == 3, "4 fetches: the index and 3"
    limit = errors[site.url("/index.xml")]
    assert limit.kind == ErrorKind.TOO_LARGE and "6 listed sitemap(s) not read" in limit.reason
