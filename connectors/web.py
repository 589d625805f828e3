"""Web pages: a list of URLs and/or a sitemap (or sitemap index), with a same-site crawl.

Every connection goes through a ``FetchPolicy`` (``connectors.fetch``): by default nothing
but public addresses is fetched, each connection pinned to the address that was checked, and
every body bounded in bytes (after decoding) and in time.

Crawl
    Breadth first from the start URLs (and every URL a sitemap lists), following ``<a href>``
    links to the same scheme and host as the page, up to ``max_depth`` links away from a start
    URL (0: the start URLs only) and ``max_pages`` fetches in all. Fragments are dropped and
    scheme and host lower-cased, so each page is fetched once.
robots.txt
    Fetched once per site with the same client (its first 512 KiB) and read as RFC 9309 says
    (``protego``: groups by product token, ``*`` and ``$`` wildcards, the longest match wins,
    an allow wins a tie); a URL it disallows for ``user_agent`` is reported (``robots``) and
    never fetched. A robots.txt answering 4xx allows everything; one that cannot be fetched
    (5xx, timeout, no connection) disallows the whole site, reported as ``fetch_error``; one
    the policy refuses makes every page of the site ``refused``. Its redirects may lead to
    another site (RFC 9309), still under the policy.
Fetching
    ``timeout`` seconds per phase; timeouts, connection errors, 429 and 5xx are retried
    ``retries`` times with exponential ``backoff``. Redirects are followed by hand (at most
    5): to the same site, or from http to https on the same host, each hop checked against
    the policy and robots.txt; a redirect elsewhere is reported (``off_site``), not followed.
    A body over ``max_bytes`` (after decoding) is abandoned (``too_large``); the policy's
    refusals are ``refused``, with the rule they broke. Anything that still fails becomes a
    ``ScanError`` with a generic reason (never the system's error text), and the crawl goes on.
Items
    ``uri`` is the page's final URL; ``version`` the ETag (``etag:<value>``) when the server
    sends one, else ``sha256:`` of the body; ``mime`` from Content-Type (else guessed from the
    path); ``title`` from ``<title>``. The fetched bytes are kept: ``read()`` never refetches.
Sitemaps
    ``<urlset>`` and ``<sitemapindex>`` (nested up to 3 levels), gzip-compressed or not (at
    most 50 MiB once decompressed, as sitemaps.org says, or ``max_bytes`` if smaller). A
    sitemap may list only URLs of its own site (sitemaps.org): others are reported
    (``off_site``) and never fetched. A top-level ``sitemap`` that cannot be read raises
    ``SourceUnavailableError``; a broken child sitemap is reported as a ScanError and the
    others are still used. With ``detect_sitemaps``, a start URL whose body parses as a
    sitemap is read as one, and one that does not is an ordinary page.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
from protego import Protego

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
from connectors.fetch import (
    Fetched,
    FetchFailedError,
    FetchPolicy,
    FetchRefusedError,
    download,
    inflate,
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


def same_site(src: str, dst: str) -> bool:
    """``dst`` is on ``src``'s site: same scheme and host, or http to https on the same host."""
    a, b = urlsplit(src), urlsplit(dst)
    if a.scheme == b.scheme:
        return a.netloc == b.netloc
    return a.scheme == "http" and b.scheme == "https" and a.hostname == b.hostname


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


def parse_sitemap(body: bytes, limit: int = MAX_SITEMAP_BYTES) -> tuple[bool, list[str]]:
    """``(is_index, locations)`` of a sitemap or sitemap index (gzip-compressed or not, at
    most ``limit`` bytes once decompressed); raises ``ValueError`` (not a sitemap) or
    ``FetchFailedError`` (``too_large``)."""
    if body[:2] == b"\x1f\x8b":
        body = inflate(body, "gzip", limit)
    elif len(body) > limit:
        raise FetchFailedError(ErrorKind.TOO_LARGE, f"over the {limit:,}-byte sitemap limit")
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


def _as_sitemap(r: Fetched, limit: int) -> tuple[bool, list[str]] | None:
    """A fetched start page read as a sitemap, or ``None`` when it is not one; raises
    ``FetchFailedError`` when it inflates past ``limit``."""
    mime = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime in _HTML or not (r.body[:2] == b"\x1f\x8b" or r.body.lstrip()[:1] == b"<"):
        return None
    try:
        return parse_sitemap(r.body, limit)
    except ValueError:
        return None


class WebConnector:
    """Pages from ``urls`` and/or a ``sitemap``, crawled within each page's site, fetched
    under ``policy`` (default: public addresses only, ``max_bytes`` and ``timeout`` from it)."""

    def __init__(
        self,
        urls: Sequence[str] = (),
        *,
        sitemap: str | None = None,
        detect_sitemaps: bool = False,
        max_depth: int = 0,
        max_pages: int = 500,
        max_bytes: int | None = None,
        timeout: float | None = None,
        retries: int = 2,
        backoff: float = 0.5,
        user_agent: str = USER_AGENT,
        name: str | None = None,
        policy: FetchPolicy | None = None,
    ) -> None:
        if not urls and not sitemap:
            raise ConfigError("give at least one URL or a sitemap")
        for u in [*urls, *([sitemap] if sitemap else [])]:
            if resolve(u, "") is None:
                raise ConfigError(f"not an http(s) URL: {u}")
        self.policy = policy or FetchPolicy()
        self.max_bytes = self.policy.max_bytes if max_bytes is None else max_bytes
        self.timeout = self.policy.timeout if timeout is None else timeout
        if max_depth < 0 or max_pages < 1 or retries < 0 or self.timeout <= 0 or backoff < 0:
            raise ConfigError("need max_depth >= 0, max_pages >= 1, retries >= 0, timeout > 0")
        if self.max_bytes < 1:
            raise ConfigError("need max_bytes >= 1")
        self.urls = [normalize(u) for u in urls]
        self.sitemap = normalize(sitemap) if sitemap else None
        self.detect_sitemaps = detect_sitemaps
        self.sitemap_limit = min(MAX_SITEMAP_BYTES, self.max_bytes)
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        self.name = name or f"web:{site_of(self.urls[0] if self.urls else sitemap or '')}"

    def scan(self) -> Iterator[SourceItem | ScanError]:
        with self.policy.client(user_agent=self.user_agent, timeout=self.timeout) as client:
            yield from _Crawl(self, client).run()


_Robots = Protego | FetchFailedError | None


class _Crawl:
    """The state of one scan: client, robots.txt per site, URLs seen and fetched."""

    def __init__(self, conf: WebConnector, client: httpx.Client) -> None:
        self.conf = conf
        self.policy = conf.policy
        self.client = client
        self.robots: dict[str, _Robots] = {}
        self.fetches = 0

    # fetching ---------------------------------------------------------------------------------

    def _get(self, url: str, limit: int, *, truncate: bool = False) -> Fetched:
        """One URL with retries on timeouts, connection errors, 429 and 5xx."""
        last = ""
        attempts = self.conf.retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.conf.backoff * 2 ** (attempt - 1))
            try:
                response = download(
                    self.client, url, limit=limit, deadline=self.policy.deadline, truncate=truncate
                )
            except FetchRefusedError as exc:
                raise FetchFailedError(ErrorKind.REFUSED, exc.reason) from None
            except FetchFailedError as exc:
                if not exc.retry:
                    raise
                last = exc.reason
                continue
            if response.status >= 500 or response.status == 429:
                last = f"server answered HTTP {response.status}"
                continue
            return response
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise FetchFailedError(ErrorKind.FETCH_ERROR, f"{last} ({tries})")

    def _fetch(
        self,
        url: str,
        *,
        limit: int,
        check_robots: bool,
        any_site: bool = False,
        truncate: bool = False,
    ) -> Fetched:
        """``url`` with redirects followed (to the same site unless ``any_site``), each hop
        checked against the policy and, with ``check_robots``, robots.txt."""
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                self.policy.check_url(current)
            except FetchRefusedError as exc:
                raise FetchFailedError(ErrorKind.REFUSED, exc.reason) from None
            response = self._get(current, limit, truncate=truncate)
            if response.status not in _REDIRECTS:
                return response
            location = response.headers.get("location")
            if not location:
                raise FetchFailedError(
                    ErrorKind.FETCH_ERROR, f"HTTP {response.status} without a Location"
                )
            target = resolve(current, location)
            if target is None:
                raise FetchFailedError(
                    ErrorKind.FETCH_ERROR, "redirected to a malformed or non-http URL"
                )
            if not any_site and not same_site(current, target):
                raise FetchFailedError(
                    ErrorKind.OFF_SITE, f"redirected to {target}, another site: not followed"
                )
            if check_robots and (denied := self._denied(target)) is not None:
                raise FetchFailedError(denied.kind, f"redirected to {target}: {denied.reason}")
            current = target
        raise FetchFailedError(ErrorKind.FETCH_ERROR, f"more than {MAX_REDIRECTS} redirects")

    # robots.txt -------------------------------------------------------------------------------

    def _robots_for(self, site: str) -> _Robots:
        """The site's rules; ``None``: everything allowed; a failure: everything disallowed."""
        if site in self.robots:
            return self.robots[site]
        rules: _Robots
        try:
            r = self._fetch(
                f"{site}/robots.txt",
                limit=MAX_ROBOTS_BYTES,
                check_robots=False,
                any_site=True,
                truncate=True,
            )
        except FetchFailedError as exc:
            rules = exc
            if exc.kind != ErrorKind.REFUSED:
                rules = FetchFailedError(
                    ErrorKind.FETCH_ERROR,
                    f"robots.txt could not be fetched ({exc.reason}); "
                    "the site is treated as disallowed (RFC 9309)",
                )
        else:
            if 200 <= r.status < 300:
                rules = Protego.parse(r.body.decode("utf-8", "replace"))
            elif 400 <= r.status < 500:
                rules = None
            else:
                rules = FetchFailedError(
                    ErrorKind.FETCH_ERROR,
                    f"robots.txt answered HTTP {r.status}; the site is treated as disallowed",
                )
        self.robots[site] = rules
        return rules

    def _denied(self, url: str) -> ScanError | None:
        rules = self._robots_for(site_of(url))
        if isinstance(rules, FetchFailedError):
            return ScanError(url, rules.kind, rules.reason)
        if rules is not None and not rules.can_fetch(url, self.conf.user_agent):
            return ScanError(url, ErrorKind.ROBOTS, "disallowed by the site's robots.txt")
        return None

    # sitemaps ---------------------------------------------------------------------------------

    def _read_sitemap(self, url: str) -> tuple[Fetched, bool, list[str]]:
        r = self._fetch(url, limit=self.conf.sitemap_limit, check_robots=False)
        self.fetches += 1
        if r.status != 200:
            raise FetchFailedError(ErrorKind.FETCH_ERROR, f"server answered HTTP {r.status}")
        try:
            is_index, locs = parse_sitemap(r.body, self.conf.sitemap_limit)
        except ValueError as exc:  # XML's ParseError is a ValueError
            raise FetchFailedError(ErrorKind.BAD_RECORD, f"not a sitemap: {exc}") from exc
        return r, is_index, locs

    def _sitemap(
        self, top: str, first: tuple[Fetched, bool, list[str]] | None = None
    ) -> tuple[list[str], list[ScanError]]:
        """The page URLs ``top`` lists (through nested indexes), and what went wrong."""
        urls: list[str] = []
        errors: list[ScanError] = []
        pending = deque([(top, 0)])
        visited: set[str] = set()
        while pending and len(urls) < self.conf.max_pages:
            if self.fetches >= self.conf.max_pages:
                errors.append(
                    ScanError(
                        top,
                        ErrorKind.TOO_LARGE,
                        f"{len(pending)} listed sitemap(s) not read: the scan's limit of "
                        f"{self.conf.max_pages} fetches was reached",
                    )
                )
                break
            url, level = pending.popleft()
            if url in visited:
                continue
            visited.add(url)
            try:
                r, is_index, locs = first if first and url == top else self._read_sitemap(url)
            except FetchFailedError as exc:
                if url == top:
                    raise SourceUnavailableError(f"sitemap {url}: {exc.reason}") from exc
                errors.append(ScanError(url, exc.kind, f"sitemap: {exc.reason}"))
                continue
            good = [u for u in (resolve(r.url, loc) for loc in locs) if u is not None]
            if len(good) < len(locs):
                bad = len(locs) - len(good)
                errors.append(
                    ScanError(url, ErrorKind.BAD_RECORD, f"sitemap lists {bad} malformed URL(s)")
                )
            here = [u for u in good if same_site(r.url, u)]
            if len(here) < len(good):
                errors.append(
                    ScanError(
                        url,
                        ErrorKind.OFF_SITE,
                        f"sitemap lists {len(good) - len(here)} URL(s) of other sites: "
                        "not fetched (a sitemap lists only its own site's URLs)",
                    )
                )
            if not is_index:
                urls.extend(here)
            elif level < MAX_SITEMAP_DEPTH:
                pending.extend((u, level + 1) for u in here)
            else:
                errors.append(
                    ScanError(
                        url,
                        ErrorKind.BAD_RECORD,
                        f"sitemap index nested deeper than {MAX_SITEMAP_DEPTH} levels: ignored",
                    )
                )
        return urls, errors

    def _detect_sitemap(self, url: str, r: Fetched) -> tuple[list[str], list[ScanError]] | None:
        """What a start page lists if it is a sitemap; ``None`` if it is not one."""
        try:
            sitemap = _as_sitemap(r, self.conf.sitemap_limit)
        except FetchFailedError as exc:
            return [], [ScanError(url, exc.kind, f"sitemap: {exc.reason}")]
        return None if sitemap is None else self._sitemap(url, (r, *sitemap))

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

        def enqueue(urls: Sequence[str], depth: int) -> None:
            fresh = [u for u in dict.fromkeys(urls) if u not in queued]
            queued.update(fresh)
            queue.extend((u, depth) for u in fresh)

        for start in self._starts():
            if isinstance(start, ScanError):
                yield start
            else:
                enqueue([start], 0)
        detect = set(self.conf.urls) if self.conf.detect_sitemaps else set()
        done: set[str] = set()
        while queue and self.fetches < self.conf.max_pages:
            url, depth = queue.popleft()
            if url in done:
                continue
            done.add(url)
            if (denied := self._denied(url)) is not None:
                yield denied
                continue
            self.fetches += 1
            try:
                r = self._fetch(url, limit=self.conf.max_bytes, check_robots=True)
            except FetchFailedError as exc:
                yield ScanError(url, exc.kind, exc.reason)
                continue
            if not 200 <= r.status < 300:
                yield ScanError(url, ErrorKind.FETCH_ERROR, f"server answered HTTP {r.status}")
                continue
            if r.url in done and r.url != url:
                continue  # redirected to a page this scan already took
            done.add(r.url)
            if url in detect and (found := self._detect_sitemap(url, r)) is not None:
                listed, errors = found
                yield from errors
                enqueue(listed, 0)
                continue
            item, links = self._page(r)
            yield item
            if depth < self.conf.max_depth:
                enqueue([u for u in links if site_of(u) == site_of(r.url)], depth + 1)

    def _page(self, r: Fetched) -> tuple[SourceItem, list[str]]:
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
