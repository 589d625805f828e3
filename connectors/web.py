"""Web pages: a list of URLs or a sitemap (index), with an optional same-site crawl.

* robots.txt is fetched per site and respected for every URL (user agent ``ragstack``).
* The crawl follows ``<a href>`` links on the same scheme and host, breadth first, up to
  ``max_depth`` links away from a start URL and ``max_pages`` pages in all.
* Timeouts and 5xx answers are retried with backoff (``retries``); what still fails is
  reported as a ``ScanError`` with the reason, and the scan goes on.
* ``version`` is the ETag when the server sends one, else the SHA-256 of the body.
"""

from __future__ import annotations

import time
import urllib.robotparser
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit
from xml.etree import ElementTree

import httpx

from connectors.base import ScanError, SourceItem, SourceUnavailableError, constant, content_version

USER_AGENT = "ragstack-connector/0.1"
_HTML = ("text/html", "application/xhtml+xml")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


@dataclass(frozen=True)
class _Fetched:
    url: str
    status: int
    body: bytes
    mime: str
    etag: str | None


class WebConnector:
    def __init__(
        self,
        urls: Sequence[str] = (),
        *,
        sitemap: str | None = None,
        max_depth: int = 0,
        max_pages: int = 500,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not urls and not sitemap:
            raise SourceUnavailableError("give at least one URL or a sitemap")
        for u in [*urls, *([sitemap] if sitemap else [])]:
            if urlsplit(u).scheme not in ("http", "https"):
                raise SourceUnavailableError(f"not an http(s) URL: {u}")
        self.urls = list(urls)
        self.sitemap = sitemap
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.retries = retries
        self.backoff = backoff
        first = self.urls[0] if self.urls else sitemap or ""
        self.name = f"web:{urlsplit(first).netloc}"
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}

    def close(self) -> None:
        self._client.close()

    def _get(self, url: str) -> _Fetched:
        """GET with retries on timeouts, connection errors and 5xx; raises on the last failure."""
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = self._client.get(url)
            except httpx.TimeoutException:
                last = f"timed out after {self._client.timeout.read}s"
                continue
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if r.status_code >= 500:
                last = f"server answered {r.status_code}"
                continue
            mime = r.headers.get("content-type", "").split(";")[0].strip().lower()
            return _Fetched(str(r.url), r.status_code, r.content, mime, r.headers.get("etag"))
        raise httpx.HTTPError(f"{last} (after {self.retries + 1} attempts)")

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        robots = self._robots.get(site)
        if robots is None:
            robots = urllib.robotparser.RobotFileParser()
            try:
                fetched = self._get(f"{site}/robots.txt")
                lines = (
                    fetched.body.decode("utf-8", "replace").splitlines()
                    if fetched.status == 200
                    else []
                )
            except httpx.HTTPError:
                lines = []  # no robots.txt reachable: everything allowed, as crawlers do
            robots.parse(lines)
            self._robots[site] = robots
        return robots.can_fetch(USER_AGENT, url)

    def _sitemap_urls(self, url: str, depth: int = 0) -> list[str]:
        fetched = self._get(url)
        if fetched.status != 200:
            raise SourceUnavailableError(f"sitemap {url}: HTTP {fetched.status}")
        try:
            root = ElementTree.fromstring(fetched.body)
        except ElementTree.ParseError as exc:
            raise SourceUnavailableError(f"sitemap {url} is not XML: {exc}") from exc
        locs = [el.text.strip() for el in root.iter() if el.tag.endswith("loc") and el.text]
        if root.tag.endswith("sitemapindex") and depth < 3:
            return [u for loc in locs for u in self._sitemap_urls(loc, depth + 1)]
        return locs

    def scan(self) -> Iterator[SourceItem | ScanError]:
        start = list(self.urls)
        if self.sitemap:
            start += self._sitemap_urls(self.sitemap)
        queue = deque((urldefrag(u)[0], 0) for u in start)
        seen = {u for u, _ in queue}
        pages = 0
        while queue and pages < self.max_pages:
            url, depth = queue.popleft()
            if not self._allowed(url):
                yield ScanError(url, "robots", "disallowed by the site's robots.txt")
                continue
            try:
                fetched = self._get(url)
            except httpx.HTTPError as exc:
                yield ScanError(url, "fetch_error", str(exc))
                continue
            pages += 1
            if fetched.status >= 400:
                yield ScanError(url, "fetch_error", f"HTTP {fetched.status}")
                continue
            title = ""
            if fetched.mime in _HTML:
                parser = _Links()
                parser.feed(fetched.body.decode("utf-8", "replace"))
                title = parser.title.strip()
                if depth < self.max_depth:
                    for href in parser.links:
                        link = urldefrag(urljoin(fetched.url, href))[0]
                        if (
                            urlsplit(link).netloc == urlsplit(url).netloc
                            and urlsplit(link).scheme in ("http", "https")
                            and link not in seen
                        ):
                            seen.add(link)
                            queue.append((link, depth + 1))
            yield SourceItem(
                source=self.name,
                uri=url,
                version=f"etag:{fetched.etag}" if fetched.etag else content_version(fetched.body),
                title=title,
                mime=fetched.mime or "application/octet-stream",
                reader=constant(fetched.body),
                metadata={"final_url": fetched.url},
                size=len(fetched.body),
            )
