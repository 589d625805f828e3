"""Web pages: a list of URLs and/or a sitemap (or sitemap index), with a same-site crawl.

Crawl
    Breadth first from the start URLs (and every URL a sitemap lists), following ``<a href>``
    links to the same scheme and host as the page, up to ``max_depth`` links away from a start
    URL (0: the start URLs only) and ``max_pages`` fetches in all. Fragments are dropped and
    scheme and host lower-cased, so each page is fetched once.
robots.txt
    Fetched once per site with the same client and fed to ``urllib.robotparser``; a URL it
    disallows for ``user_agent`` is reported (``robots``) and never fetched. As RFC 9309 says,
    a robots.txt answering 4xx allows everything, and one that cannot be fetched (5xx,
    timeout, no connection) disallows the whole site, reported as ``fetch_error``.
Fetching
    httpx with ``timeout`` seconds per phase; timeouts, connection errors, 429 and 5xx are
    retried ``retries`` times with exponential ``backoff``. Redirects are followed by hand (at
    most 5): to the same site, or from http to https on the same host, each hop checked
    against robots.txt; a redirect elsewhere is reported (``off_site``), not followed. A body
    over ``max_bytes`` is abandoned (``too_large``). Anything that still fails becomes a
    ``ScanError`` with the reason, and the crawl goes on.
Items
    ``uri`` is the page's final URL; ``version`` the ETag (``etag:<value>``) when the server
    sends one, else ``sha256:`` of the body; ``mime`` from Content-Type (else guessed from the
    path); ``title`` from ``<title>``. The fetched bytes are kept: ``read()`` never refetches.
Sitemaps
    ``<urlset>`` and ``<sitemapindex>`` (nested up to 3 levels), gzip-compressed or not. A
    top-level sitemap that cannot be read raises ``SourceUnavailableError``; a broken child
    sitemap is reported as a ScanError and the others are still used.
"""

from __future__ import annotations

import gzip
import time
import urllib.robotparser
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx

from connectors.base import (
    ConfigError,
    ErrorKind,
    InMemory,
    MetaValue,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    content_version,
    guess_mime,
)

USER_AGENT = "ragstack-connector/0.1"
MAX_REDIRECTS = 5
MAX_SITEMAP_DEPTH = 3
MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # sitemaps.org: 50 MiB uncompressed
_HTML = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def normalize(url: str) -> str:
    """``url`` without its fragment, scheme and host lower-cased, an empty path as ``/``."""
    parts = urlsplit(urldefrag(url)[0])
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )


def resolve(base: str, href: str) -> str | None:
    """``href`` against ``base``, normalized; ``None`` when malformed or not http(s)."""
    try:
        url = normalize(urljoin(base, href))
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def site_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _may_redirect(src: str, dst: str) -> bool:
    a, b = urlsplit(src), urlsplit(dst)
    if a.scheme == b.scheme:
        return a.netloc == b.netloc
    return a.scheme == "http" and b.scheme == "https" and a.hostname == b.hostname


class _FetchError(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class _Response:
    url: str  # final URL
    status: int
    headers: httpx.Headers
    body: bytes


class _PageParser(HTMLParser):
    """``<title>``, ``<base href>`` and ``<a href>`` of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.base: str | None = None
        self._title: list[str] = []
        self._in_title = False

    @property
    def title(self) -> str:
        return " ".join("".join(self._title).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.links.append(href.strip())
        elif tag == "base" and href and self.base is None:
            self.base = href.strip()
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_sitemap(body: bytes) -> tuple[bool, list[str]]:
    """``(is_index, locations)`` of a sitemap or sitemap index; raises ``ValueError``."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    root = ElementTree.fromstring(body)  # expat refuses entity-expansion bombs
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"<{kind}> is not <urlset> or <sitemapindex>")
    locs = [
        loc.text.strip()
        for entry in root
        for loc in entry
        if _local(loc.tag) == "loc" and loc.text and loc.text.strip()
    ]
    return kind == "sitemapindex", locs


class WebConnector:
    """Pages from ``urls`` and/or a ``sitemap``, crawled within each page's site."""

    def __init__(
        self,
        urls: Sequence[str] = (),
        *,
        sitemap: str | None = None,
        max_depth: int = 0,
        max_pages: int = 500,
        max_bytes: int | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        user_agent: str = USER_AGENT,
        name: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not urls and not sitemap:
            raise ConfigError("give at least one URL or a sitemap")
        for u in [*urls, *([sitemap] if sitemap else [])]:
            if resolve(u, "") is None:
                raise ConfigError(f"not an http(s) URL: {u}")
        if max_depth < 0 or max_pages < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise ConfigError("need max_depth >= 0, max_pages >= 1, retries >= 0, timeout > 0")
        self.urls = [normalize(u) for u in urls]
        self.sitemap = normalize(sitemap) if sitemap else None
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        self.transport = transport
        self.name = name or f"web:{site_of(self.urls[0] if self.urls else sitemap or '')}"

    def scan(self) -> Iterator[SourceItem | ScanError]:
        with httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            transport=self.transport,
            headers={"User-Agent": self.user_agent},
        ) as client:
            yield from _Crawl(self, client).run()


class _Crawl:
    """The state of one scan: client, robots.txt per site, URLs seen and fetched."""

    def __init__(self, conf: WebConnector, client: httpx.Client) -> None:
        self.conf = conf
        self.client = client
        self.robots: dict[str, urllib.robotparser.RobotFileParser | _FetchError | None] = {}

    # fetching ---------------------------------------------------------------------------------

    def _attempt(self, url: str, limit: int | None) -> _Response:
        with self.client.stream("GET", url) as r:
            if r.status_code in _REDIRECTS or r.status_code >= 400:
                return _Response(url, r.status_code, r.headers, b"")
            declared = r.headers.get("content-length", "")
            if limit is not None and declared.isdigit() and int(declared) > limit:
                raise _FetchError(
                    ErrorKind.TOO_LARGE,
                    f"{int(declared):,} bytes is over the {limit:,}-byte limit: not fetched",
                )
            chunks: list[bytes] = []
            total = 0
            for chunk in r.iter_bytes():
                total += len(chunk)
                if limit is not None and total > limit:
                    raise _FetchError(
                        ErrorKind.TOO_LARGE, f"over the {limit:,}-byte limit: download abandoned"
                    )
                chunks.append(chunk)
            return _Response(url, r.status_code, r.headers, b"".join(chunks))

    def _get(self, url: str, limit: int | None) -> _Response:
        """One URL with retries on timeouts, connection errors, 429 and 5xx."""
        last = ""
        attempts = self.conf.retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.conf.backoff * 2 ** (attempt - 1))
            try:
                response = self._attempt(url, limit)
            except httpx.TimeoutException:
                last = f"timed out after {self.conf.timeout:g}s"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise _FetchError(ErrorKind.FETCH_ERROR, f"{type(exc).__name__}: {exc}") from exc
            if response.status >= 500 or response.status == 429:
                last = f"server answered HTTP {response.status}"
                continue
            return response
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise _FetchError(ErrorKind.FETCH_ERROR, f"{last} ({tries})")

    def _fetch(self, url: str, *, limit: int | None, check_robots: bool) -> _Response:
        """``url`` with same-site redirects followed (each hop checked against robots.txt)."""
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._get(current, limit)
            if response.status not in _REDIRECTS:
                return response
            location = response.headers.get("location")
            if not location:
                raise _FetchError(
                    ErrorKind.FETCH_ERROR, f"HTTP {response.status} without a Location"
                )
            target = resolve(current, location)
            if target is None:
                raise _FetchError(
                    ErrorKind.FETCH_ERROR, f"redirected to a malformed or non-http URL: {location}"
                )
            if not _may_redirect(current, target):
                raise _FetchError(
                    ErrorKind.OFF_SITE, f"redirected to {target}, another site: not followed"
                )
            if check_robots and (denied := self._denied(target)) is not None:
                raise _FetchError(denied.kind, f"redirected to {target}: {denied.reason}")
            current = target
        raise _FetchError(ErrorKind.FETCH_ERROR, f"more than {MAX_REDIRECTS} redirects")

    # robots.txt -------------------------------------------------------------------------------

    def _robots_for(self, site: str) -> urllib.robotparser.RobotFileParser | _FetchError | None:
        """The site's rules; ``None``: everything allowed; a failure: everything disallowed."""
        if site in self.robots:
            return self.robots[site]
        rules: urllib.robotparser.RobotFileParser | _FetchError | None
        try:
            r = self._fetch(f"{site}/robots.txt", limit=MAX_ROBOTS_BYTES, check_robots=False)
        except _FetchError as exc:
            rules = _FetchError(
                ErrorKind.FETCH_ERROR,
                f"robots.txt could not be fetched ({exc.reason}); "
                "the site is treated as disallowed (RFC 9309)",
            )
        else:
            if 200 <= r.status < 300:
                rules = urllib.robotparser.RobotFileParser()
                rules.parse(r.body.decode("utf-8", "replace").splitlines())
            elif 400 <= r.status < 500:
                rules = None
            else:
                rules = _FetchError(
                    ErrorKind.FETCH_ERROR,
                    f"robots.txt answered HTTP {r.status}; the site is treated as disallowed",
                )
        self.robots[site] = rules
        return rules

    def _denied(self, url: str) -> ScanError | None:
        rules = self._robots_for(site_of(url))
        if isinstance(rules, _FetchError):
            return ScanError(url, rules.kind, rules.reason)
        if rules is not None and not rules.can_fetch(self.conf.user_agent, url):
            return ScanError(url, ErrorKind.ROBOTS, "disallowed by the site's robots.txt")
        return None

    # sitemaps ---------------------------------------------------------------------------------

    def _sitemap(self, top: str) -> tuple[list[str], list[ScanError]]:
        urls: list[str] = []
        errors: list[ScanError] = []
        pending = deque([(top, 0)])
        visited: set[str] = set()
        while pending:
            url, level = pending.popleft()
            if url in visited:
                continue
            visited.add(url)
            try:
                r = self._fetch(url, limit=MAX_SITEMAP_BYTES, check_robots=False)
                if r.status != 200:
                    raise _FetchError(ErrorKind.FETCH_ERROR, f"server answered HTTP {r.status}")
                try:
                    is_index, locs = parse_sitemap(r.body)
                except (ValueError, OSError, EOFError) as exc:  # XML ParseError is a ValueError
                    raise _FetchError(ErrorKind.BAD_RECORD, f"not a sitemap: {exc}") from exc
            except _FetchError as exc:
                if url == top:
                    raise SourceUnavailableError(f"sitemap {url}: {exc.reason}") from exc
                errors.append(ScanError(url, exc.kind, f"sitemap: {exc.reason}"))
                continue
            good = [u for u in (resolve(url, loc) for loc in locs) if u is not None]
            if len(good) < len(locs):
                bad = len(locs) - len(good)
                errors.append(
                    ScanError(url, ErrorKind.BAD_RECORD, f"sitemap lists {bad} malformed URL(s)")
                )
            if not is_index:
                urls.extend(good)
            elif level < MAX_SITEMAP_DEPTH:
                pending.extend((u, level + 1) for u in good)
            else:
                errors.append(
                    ScanError(
                        url,
                        ErrorKind.BAD_RECORD,
                        f"sitemap index nested deeper than {MAX_SITEMAP_DEPTH} levels: ignored",
                    )
                )
        return urls, errors

    # the crawl --------------------------------------------------------------------------------

    def _starts(self) -> Iterator[ScanError | str]:
        yield from self.conf.urls
        if self.conf.sitemap:
            listed, errors = self._sitemap(self.conf.sitemap)
            yield from errors
            yield from listed

    def run(self) -> Iterator[SourceItem | ScanError]:
        queue: deque[tuple[str, int]] = deque()
        queued: set[str] = set()
        for start in self._starts():
            if isinstance(start, ScanError):
                yield start
            elif start not in queued:
                queued.add(start)
                queue.append((start, 0))
        done: set[str] = set()
        fetches = 0
        while queue and fetches < self.conf.max_pages:
            url, depth = queue.popleft()
            if url in done:
                continue
            done.add(url)
            if (denied := self._denied(url)) is not None:
                yield denied
                continue
            fetches += 1
            try:
                r = self._fetch(url, limit=self.conf.max_bytes, check_robots=True)
            except _FetchError as exc:
                yield ScanError(url, exc.kind, exc.reason)
                continue
            if not 200 <= r.status < 300:
                yield ScanError(url, ErrorKind.FETCH_ERROR, f"server answered HTTP {r.status}")
                continue
            if r.url in done and r.url != url:
                continue  # redirected to a page this scan already took
            done.add(r.url)
            item, links = self._page(r)
            yield item
            if depth < self.conf.max_depth:
                fresh = [
                    u
                    for u in dict.fromkeys(links)
                    if site_of(u) == site_of(r.url) and u not in queued
                ]
                queued.update(fresh)
                queue.extend((u, depth + 1) for u in fresh)

    def _page(self, r: _Response) -> tuple[SourceItem, list[str]]:
        content_type = r.headers.get("content-type", "")
        mime = content_type.split(";", 1)[0].strip().lower() or guess_mime(urlsplit(r.url).path)
        links: list[str] = []
        title = ""
        if mime in _HTML:
            parser = _PageParser()
            parser.feed(r.body.decode(_charset(content_type), "replace"))
            parser.close()
            title = parser.title
            base = (resolve(r.url, parser.base) if parser.base else None) or r.url
            links = [u for u in (resolve(base, h) for h in parser.links) if u is not None]
        etag = r.headers.get("etag")
        meta: dict[str, MetaValue] = {"status": r.status}
        if content_type:
            meta["content_type"] = content_type
        if last_modified := r.headers.get("last-modified"):
            meta["last_modified"] = last_modified
        path = urlsplit(r.url).path.rstrip("/")
        item = SourceItem(
            source=self.conf.name,
            uri=r.url,
            version=f"etag:{etag}" if etag else content_version(r.body),
            title=title or path.rsplit("/", 1)[-1] or urlsplit(r.url).netloc,
            mime=mime,
            reader=InMemory(r.body),
            metadata=meta,
            size=len(r.body),
        )
        return item, links


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"
