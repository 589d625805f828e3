"""The fetch policy: address rules, the allow-list, the pinned client against real loopback
servers, and bounded decoding (gzip bombs)."""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors import ConfigError, ErrorKind, FetchFailedError, FetchPolicy, FetchRefusedError
from connectors.fetch import Inflater, address_rule, download, inflate
from evals.bench_api import rss_mb
from evals.bombs import MiB, gzip_bomb
from evals.ssrf import ForbiddenListener

PUBLIC = FetchPolicy()


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "an unspecified address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("192.0.2.1", "a private address"),  # documentation
        ("198.18.0.1", "a private address"),  # benchmarking
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("2001:db8::1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped)"),
        ("::ffff:10.0.0.1", "a private address (IPv4-mapped)"),
        ("::ffff:169.254.169.254", "a link-local address (IPv4-mapped)"),
        ("64:ff9b::7f00:1", "a loopback address (NAT64)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (NAT64)"),
        ("2002:7f00:1::1", "a loopback address (6to4)"),
        ("2002:a00:1::1", "a private address (6to4)"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo tunnel address"),
        ("::127.0.0.1", "an IPv4-compatible IPv6 address"),
        ("::8.8.8.8", "an IPv4-compatible IPv6 address"),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
    ],
)
def test_address_rules(address: str, rule: str | None) -> None:
    assert address_rule(ipaddress.ip_address(address)) == rule


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",  # decimal
        "http://017700000001/",  # octal
        "http://0x7f000001/",  # hex
        "http://0x7f.1/",  # hex, short
        "http://127.1/",  # short
        "http://0177.0.0.1/",
        "http://0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://[64:ff9b::127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "http://localhost/",
        "http://LOCALHOST:8080/",
        "http://localhost./",
        "http://api.localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/",
        "http://user:pass@127.0.0.1:80/",
        "http://example.org@127.0.0.1/",
    ],
)
def test_forbidden_literals_are_refused_without_a_lookup(url: str) -> None:
    with pytest.raises(FetchRefusedError, match=r"^refused: .* (address|name)"):
        PUBLIC.check_url(url)


def test_schemes_and_shapes() -> None:
    for url in ("ftp://example.org/", "file:///etc/passwd", "gopher://x/", "javascript:x"):
        with pytest.raises(FetchRefusedError, match="only http or https"):
            PUBLIC.check_url(url)
    with pytest.raises(FetchRefusedError, match="no host"):
        PUBLIC.check_url("http:///path")
    with pytest.raises(FetchRefusedError, match="only https"):
        FetchPolicy(schemes=frozenset({"https"})).check_url("http://example.org/")
    for url in ("http://example.org/", "https://8.8.8.8/", "http://[2606:4700::1111]/"):
        PUBLIC.check_url(url)  # public names and addresses pass (names are checked on connect)


def test_allow_list_by_host_and_network() -> None:
    policy = FetchPolicy(allow=("10.0.0.0/8", "192.168.1.5", "wiki.corp", "*.intra.example"))
    for url in ("http://10.9.8.7/", "http://192.168.1.5/", "http://[::ffff:10.1.1.1]/"):
        policy.check_url(url)
    for url in ("http://192.168.1.6/", "http://127.0.0.1/", "http://localhost/"):
        with pytest.raises(FetchRefusedError):
            policy.check_url(url)
    assert policy._host_allowed("WIKI.corp.") and policy._host_allowed("a.b.intra.example")
    assert not policy._host_allowed("intra.example") and not policy._host_allowed("wiki.corpx")
    with pytest.raises(FetchRefusedError, match="loopback name"):
        FetchPolicy().addresses("localhost", 80)
    assert FetchPolicy(allow=("localhost",)).addresses("localhost", 80) == ["127.0.0.1"]
    assert FetchPolicy(allow_private=True).addresses("127.0.0.3", 80) == ["127.0.0.3"]
    hinted = FetchPolicy(hint="ask the operator")
    with pytest.raises(FetchRefusedError, match=r"\(ask the operator\)$"):
        hinted.check_url("http://10.0.0.1/")
    for bad in ("not a host!", "http://x", "10.0.0.0/33", "a..b"):
        with pytest.raises(ConfigError, match="allow-list"):
            FetchPolicy(allow=(bad,))


def test_the_client_refuses_by_itself_and_never_connects() -> None:
    """The pinned backend refuses at connect time whatever the request path: no check_url."""
    listener = ForbiddenListener()
    try:
        port = listener.port
        hosts = ["127.0.0.3", "2130706435", "0x7f.0.0.3", "127.1", "[::1]", "[::ffff:127.0.0.3]",
                 "localhost", "0", "0.0.0.0"]  # fmt: skip
        with PUBLIC.client(user_agent="t") as client:
            for host in hosts:
                with pytest.raises(FetchRefusedError, match=r"^refused: "):
                    client.get(f"http://{host}:{port}/")
                with pytest.raises(FetchRefusedError):
                    download(client, f"http://{host}:{port}/", limit=100, deadline=5)
        assert listener.connections == 0
        allowed = FetchPolicy(allow=("127.0.0.3/32",))
        with allowed.client(user_agent="t") as client:
            assert client.get(f"http://127.0.0.3:{port}/").content == b"secret"
            with pytest.raises(FetchRefusedError):  # 127.0.0.1 is not in 127.0.0.3/32
                client.get(f"http://127.0.0.1:{port}/")
        assert listener.connections == 1
    finally:
        listener.close()


@dataclass(frozen=True)
class _ResolvesTo(FetchPolicy):
    """A policy whose resolver answers ``answer`` for every host: stands in for DNS, which
    this machine cannot be made to answer for an arbitrary name."""

    answer: str = ""

    def addresses(self, host: str, port: int) -> list[str]:
        ip = ipaddress.ip_address(self.answer)
        if not self.allow_private and (rule := address_rule(ip)) and not self._address_allowed(ip):
            raise FetchRefusedError(f"refused: {host} resolves to {rule}")
        return [self.answer]


def test_connections_go_to_the_address_that_was_checked() -> None:
    """No second lookup: a name that resolves nowhere is reached at the address the policy
    checked (so DNS rebinding between check and connect cannot swap it)."""
    listener = ForbiddenListener()
    try:
        url = f"http://pinned.invalid:{listener.port}/"
        refused = pytest.raises(FetchRefusedError, match=r"pinned\.invalid resolves to a loopback")
        with _ResolvesTo(answer="127.0.0.3").client(user_agent="t") as client, refused:
            client.get(url)
        assert listener.connections == 0
        checked = _ResolvesTo(answer="127.0.0.3", allow=("127.0.0.3/32",))
        with checked.client(user_agent="t") as client:
            r = client.get(url)
        assert r.content == b"secret" and listener.hits == ["127.0.0.3"]
    finally:
        listener.close()


class _Body(BaseHTTPRequestHandler):
    body = b""
    headers_out: dict[str, str] = {}  # noqa: RUF012 - set per server below

    def do_GET(self) -> None:
        self.send_response(200)
        for k, v in self.headers_out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(self.body)

    def log_message(self, *_args: object) -> None:
        pass


Serve = Callable[[bytes, dict[str, str]], str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[ThreadingHTTPServer] = []

    def start(body: bytes, headers: dict[str, str]) -> str:
        handler = type("H", (_Body,), {"body": body, "headers_out": headers})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


LOOPBACK = FetchPolicy(allow=("127.0.0.1",))


def test_a_gzip_bomb_is_too_large_and_never_inflated(serve: Serve) -> None:
    bomb = gzip_bomb(1024)  # ~1 MB, 1 GiB inflated
    url = serve(bomb, {"Content-Encoding": "gzip", "Content-Type": "text/html"})
    before = rss_mb(os.getpid())
    with LOOPBACK.client(user_agent="t") as client:
        with pytest.raises(FetchFailedError, match="once decompressed") as caught:
            download(client, url, limit=4 * MiB, deadline=30)
        assert caught.value.kind == ErrorKind.TOO_LARGE
        head = download(client, url, limit=4 * MiB, deadline=30, truncate=True)
    assert head.body == bytes(4 * MiB), "truncate keeps exactly the first limit bytes"
    assert rss_mb(os.getpid()) - before < 48


def test_bodies_are_decoded_within_the_limit(serve: Serve) -> None:
    text = b"<p>hello</p>" * 1000
    zlib_deflate = zlib.compress(text)
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = raw.compress(text) + raw.flush()
    two_members = gzip.compress(text[:5000]) + gzip.compress(text[5000:])
    cases = [
        ({"Content-Encoding": "gzip"}, gzip.compress(text)),
        ({"Content-Encoding": "deflate"}, zlib_deflate),
        ({"Content-Encoding": "deflate"}, raw_deflate),
        ({"Content-Encoding": "gzip"}, two_members),
        ({}, text),
    ]
    with LOOPBACK.client(user_agent="t") as client:
        for headers, body in cases:
            url = serve(body, headers)
            assert download(client, url, limit=len(text), deadline=5).body == text
            with pytest.raises(FetchFailedError) as caught:
                download(client, url, limit=len(text) - 1, deadline=5)
            assert caught.value.kind == ErrorKind.TOO_LARGE
        url = serve(b"x", {"Content-Encoding": "br"})
        with pytest.raises(FetchFailedError, match="unsupported Content-Encoding"):
            download(client, url, limit=100, deadline=5)
        url = serve(b"not gzip at all", {"Content-Encoding": "gzip"})
        with pytest.raises(FetchFailedError, match="not valid gzip"):
            download(client, url, limit=100, deadline=5)


def test_inflater_bounds_each_step() -> None:
    bomb = gzip_bomb(64)
    inflater = Inflater("gzip", MiB)
    with pytest.raises(FetchFailedError, match="1,048,576-byte limit"):
        for i in range(0, len(bomb), 4096):
            inflater.feed(bomb[i : i + 4096])
    assert inflater.total <= MiB
    assert inflate(gzip.compress(b"abc"), "gzip", 3) == b"abc"
    assert inflate(b"abc", "identity", 3) == b"abc"
    with pytest.raises(FetchFailedError):
        inflate(b"abcd", "", 3)


def test_errors_are_generic() -> None:
    listener = ForbiddenListener()
    port = listener.port
    listener.close()  # nothing listens there now
    failed = pytest.raises(FetchFailedError)
    with LOOPBACK.client(user_agent="t", timeout=2) as client, failed as caught:
        download(client, f"http://127.0.0.1:{port}/", limit=100, deadline=5)
    assert caught.value.reason == "could not connect" and caught.value.retry
