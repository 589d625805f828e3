"""Hostile URLs against a live API server: how many reach an address nobody allowed?

Two servers on loopback stand in for a private network:

* ``ForbiddenListener``: bound to the same port on 127.0.0.3, 127.0.0.1 and ::1 (when the
  machine has IPv6); it counts every TCP connection it accepts, HTTP or not. Nothing the API
  is asked to fetch may ever connect to it.
* ``AllowedSite``: an HTTP site on 127.0.0.2, which the API server is started to allow
  (``SERVER_ENV``), whose pages point at the listener: a redirect, a robots.txt redirecting
  there (RFC 9309 lets robots.txt redirect across sites), sitemaps listing it, a page
  linking to it.

``hostile_cases`` lists the URLs (the listener's address spelled every way a resolver
accepts, IPv6 and mapped forms, URL-parser confusions, the allowed site's traps);
``run_cases`` submits each to ``POST /v1/collections/{name}/documents``, waits for the job and
reports, per case, the answer and the job's errors, and in all how many connections the
listener saw (``reached``; the only right answer is 0)::

    with hostile_targets() as targets:          # start the API with SERVER_ENV first
        report = run_cases(api_url, headers, "kb", targets)
    print(report.reached)                       # what bench_security counts as ssrf_reached
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

FORBIDDEN_HOST = "127.0.0.3"
ALLOWED_HOST = "127.0.0.2"
SERVER_ENV = {"RAGSTACK_FETCH_ALLOW": f"{ALLOWED_HOST}/32"}
"""What the API server under test must be started with (the allowed site's address)."""

# What an error may say about a refusal, and what it must never say (the network's answer).
RULE_WORDS = ("refused:", "another site", "other sites")
LEAK_WORDS = ("errno", "connection refused", "connecterror", "name or service", "timed out")


class ForbiddenListener:
    """TCP listeners on one port of 127.0.0.3, 127.0.0.1 and ::1, counting connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.hits: list[str] = []  # the listening address each connection came to
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sockets = self._bind()
        self.port = int(self.sockets[0].getsockname()[1])
        self._threads = [
            threading.Thread(target=self._accept, args=(s,), daemon=True) for s in self.sockets
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _bind() -> list[socket.socket]:
        for _ in range(50):
            first = socket.socket()
            first.bind((FORBIDDEN_HOST, 0))
            port = first.getsockname()[1]
            made = [first]
            try:
                more = socket.socket()
                made.append(more)
                more.bind(("127.0.0.1", port))
                if socket.has_ipv6:
                    six = socket.socket(socket.AF_INET6)
                    made.append(six)
                    six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    six.bind(("::1", port))
            except OSError:
                for s in made:
                    s.close()
                continue
            for s in made:
                s.listen(64)
                s.settimeout(0.1)
            return made
        raise RuntimeError("no port free on 127.0.0.3, 127.0.0.1 and ::1 at once")

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _peer = sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self.hits.append(str(sock.getsockname()[0]))
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in self.sockets:
            s.close()


class AllowedSite:
    """An allowed HTTP site on 127.0.0.2 whose pages lead to the forbidden listener."""

    def __init__(self, forbidden_port: int) -> None:
        self.routes: dict[str, tuple[int, str, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                status, ctype, headers, body = site.routes.get(
                    self.path, (404, "text/plain", {}, b"not found")
                )
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((ALLOWED_HOST, 0), Handler)
        self.base = f"http://{ALLOWED_HOST}:{self.server.server_address[1]}"
        forbidden = f"http://{FORBIDDEN_HOST}:{forbidden_port}"
        ns = "xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'"
        html, xml = "text/html; charset=utf-8", "application/xml"
        self.routes = {
            "/robots.txt": (200, "text/plain", {}, b"User-agent: *\nAllow: /\n"),
            "/redirect": (302, html, {"Location": f"{forbidden}/redirected"}, b""),
            "/sitemap.xml": (
                200, xml, {},
                f"<urlset {ns}><url><loc>{forbidden}/listed</loc></url>"
                f"<url><loc>{self.base}/page</loc></url></urlset>".encode(),
            ),
            "/index.xml": (
                200, xml, {},
                f"<sitemapindex {ns}><sitemap><loc>{forbidden}/child.xml</loc></sitemap>"
                "</sitemapindex>".encode(),
            ),
            "/page": (200, html, {}, f"<p>Allowed.</p><a href='{forbidden}/a'>a</a>".encode()),
        }  # fmt: skip
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def robots_redirecting_to(self, target: str) -> None:
        """Make this site's robots.txt redirect to ``target`` (another site)."""
        self.routes["/robots.txt"] = (302, "text/plain", {"Location": target}, b"")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Case:
    name: str
    url: str
    before: str = ""  # "robots-redirect": the allowed site's robots.txt points at the listener
    refused: bool = True  # False: the URL itself is fine (only what it leads to is not)


@dataclass
class Targets:
    listener: ForbiddenListener
    site: AllowedSite

    def cases(self) -> list[Case]:
        return hostile_cases(self.listener.port, self.site.base)


def hostile_cases(port: int, allowed: str) -> list[Case]:
    """URLs that would reach the listener on ``port`` if the server fetched what it is told."""
    f = f"{FORBIDDEN_HOST}:{port}"
    direct = [
        ("ipv4", f"http://{f}/"),
        ("https", f"https://{f}/"),
        ("localhost", f"http://localhost:{port}/"),
        ("localhost-dot", f"http://localhost.:{port}/"),
        ("sub.localhost", f"http://a.localhost:{port}/"),
        ("loopback-short", f"http://127.1:{port}/"),
        ("decimal", f"http://2130706435:{port}/"),
        ("decimal-127.0.0.1", f"http://2130706433:{port}/"),
        ("hex", f"http://0x7f000003:{port}/"),
        ("hex-dotted", f"http://0x7f.0.0.3:{port}/"),
        ("octal", f"http://0177.0.0.3:{port}/"),
        ("unspecified", f"http://0.0.0.0:{port}/"),
        ("zero", f"http://0:{port}/"),
        ("ipv6-loopback", f"http://[::1]:{port}/"),
        ("ipv4-mapped", f"http://[::ffff:{FORBIDDEN_HOST}]:{port}/"),
        ("ipv4-mapped-hex", f"http://[::ffff:7f00:3]:{port}/"),
        ("ipv4-compatible", f"http://[::127.0.0.3]:{port}/"),
        ("6to4", f"http://[2002:7f00:3::1]:{port}/"),
        ("nat64", f"http://[64:ff9b::7f00:3]:{port}/"),
        ("userinfo-confusion", f"http://{allowed.split('//', 1)[1]}@{f}/"),
        ("fragment-confusion", f"http://{f}#@{allowed.split('//', 1)[1]}/"),
        ("metadata", "http://169.254.169.254/latest/meta-data/"),
        ("uppercase-scheme", f"HTTP://{f}/"),
        ("file-scheme", "file:///etc/passwd"),
        ("gopher", f"gopher://{f}/_x"),
    ]
    via_allowed = [
        ("redirect", f"{allowed}/redirect"),
        ("sitemap", f"{allowed}/sitemap.xml"),
        ("sitemap-index", f"{allowed}/index.xml"),
    ]
    cases = [Case(n, u) for n, u in direct + via_allowed]
    cases.append(Case("robots-redirect", f"{allowed}/page", before="robots-redirect"))
    cases.append(Case("page-link", f"{allowed}/page", refused=False))
    # the machine's own name resolves (through /etc/hosts, not a literal) to loopback or a
    # private address on most machines: refused when the job resolves it
    own = socket.gethostname()
    cases.append(Case("own-hostname", f"http://{own}:{port}/", refused=_private_name(own)))
    return cases


def _private_name(host: str) -> bool:
    import ipaddress

    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(not ipaddress.ip_address(str(f[4][0]).split("%")[0]).is_global for f in found)


@contextlib.contextmanager
def hostile_targets() -> Iterator[Targets]:
    listener = ForbiddenListener()
    site = AllowedSite(listener.port)
    try:
        yield Targets(listener, site)
    finally:
        site.close()
        listener.close()


@dataclass
class CaseResult:
    case: Case
    status: int  # of the submission: 202 (a job) or 4xx (refused at once)
    message: str  # the 4xx error message, or the failed job's message
    errors: list[dict[str, str]] = field(default_factory=list)  # the job's per-item errors
    job_status: str = ""
    reached: int = 0  # connections the listener saw during this case

    @property
    def texts(self) -> list[str]:
        return [self.message, *(e.get("reason", "") for e in self.errors)]

    @property
    def names_a_rule(self) -> bool:
        """Refused with a reason that names the rule (or at once with a 4xx); true for a case
        that is not to be refused."""
        if not self.case.refused:
            return True
        if self.status >= 400:
            return bool(self.message)
        kinds = {e.get("kind") for e in self.errors}
        said = " ".join(self.texts)
        return bool(kinds & {"refused", "off_site"}) and any(w in said for w in RULE_WORDS)

    @property
    def leaks(self) -> list[str]:
        """Words of the network's own answer found in what the caller was told."""
        said = " ".join(self.texts).lower()
        return [w for w in LEAK_WORDS if w in said]


@dataclass
class Report:
    results: list[CaseResult]
    reached: int  # connections the listener accepted in all (must be 0)

    def summary(self) -> dict[str, object]:
        return {
            "cases": len(self.results),
            "ssrf_reached": self.reached,
            "unnamed_rule": [r.case.name for r in self.results if not r.names_a_rule],
            "leaks": {r.case.name: r.leaks for r in self.results if r.leaks},
        }


def run_cases(
    api_url: str,
    headers: Mapping[str, str],
    collection: str,
    targets: Targets,
    *,
    cases: list[Case] | None = None,
    timeout: float = 60.0,
) -> Report:
    """Submits every case as a URL ingest to the live API at ``api_url`` (a writer's key in
    ``headers``; ``collection`` must exist and be visible to it) and waits for each job."""
    results: list[CaseResult] = []
    robots = targets.site.routes["/robots.txt"]
    with httpx.Client(base_url=api_url, headers=dict(headers), timeout=30) as client:
        for case in cases if cases is not None else targets.cases():
            if case.before == "robots-redirect":
                forbidden = f"http://{FORBIDDEN_HOST}:{targets.listener.port}/robots.txt"
                targets.site.robots_redirecting_to(forbidden)
            before = targets.listener.connections
            try:
                results.append(_submit(client, case, collection, timeout))
            finally:
                targets.site.routes["/robots.txt"] = robots
            results[-1].reached = targets.listener.connections - before
    return Report(results, targets.listener.connections)


def _submit(client: httpx.Client, case: Case, collection: str, timeout: float) -> CaseResult:
    r = client.post(f"/v1/collections/{collection}/documents", data={"url": case.url})
    if r.status_code != 202:
        message = str(r.json().get("error", {}).get("message", r.text))
        return CaseResult(case, r.status_code, message)
    job = wait_job(client, r.json()["id"], timeout)
    errors = job.get("errors") or []
    return CaseResult(
        case,
        202,
        str(job.get("message") or ""),
        [dict(e) for e in errors] if isinstance(errors, list) else [],
        str(job.get("status", "")),
    )


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, object]:
    """``GET /v1/jobs/{id}`` until the job has ended (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    job: dict[str, object] = {}
    while time.monotonic() < deadline:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        if job.get("status") not in ("queued", "running"):
            break
        time.sleep(0.05)
    return job


def run(root: Path) -> tuple[int, int]:
    """``evals.bench_security``'s entry: a service on ``root`` allowing only the allowed site,
    served in this process, every hostile case submitted by a writer; returns ``(cases,
    connections the forbidden listener received)``."""
    from evals.leaks import LiveServer
    from ragstack.access import Keys
    from ragstack.api import create_app
    from ragstack.app import build
    from ragstack.config import Settings

    settings = Settings(data_dir=root / "data", embedder="hashing", principal="user:root",
                        fetch_allow=(f"{ALLOWED_HOST}/32",))  # fmt: skip
    svc = build(settings)
    svc.create_collection("kb", owner="user:root", public=True)
    _, secret = Keys(svc.store).create("user:w", role="writer")
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        with hostile_targets() as targets, LiveServer(create_app(svc)) as server:
            report = run_cases(server.url, headers, "kb", targets)
    finally:
        svc.store.close()
    return len(report.results), report.reached
