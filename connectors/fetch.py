"""Outbound fetching under a policy: which URLs may be fetched, from which addresses, how much.

Addresses
    A URL's host is resolved (``getaddrinfo``, which also normalises the legacy literal forms
    ``2130706433``, ``0x7f.1``, ``127.1``, ``0177.0.0.1``) and refused when ANY address it
    resolves to is not public: unspecified (``0.0.0.0/8``, ``::``), loopback, link-local,
    multicast, reserved, private, IPv6 site-local, shared (``100.64.0.0/10``) or anything
    else ``ipaddress`` does not call global. IPv6 forms that carry an IPv4 address are judged
    by that address too: IPv4-mapped (``::ffff:127.0.0.1``), NAT64 (``64:ff9b::/96``), 6to4
    (``2002::/16``); IPv4-compatible (``::/96``) and Teredo addresses are refused outright.
    ``localhost`` and ``*.localhost`` are loopback names (RFC 6761) without asking anyone.
Allow-list
    ``allow_private`` lifts the address rules (the operator's own command line);
    ``allow`` names hosts (``intranet.example``, ``*.corp.example``) and networks
    (``10.0.0.0/8``, ``192.168.1.5``) that may be fetched although they are not public.
Pinning
    Every connection is made by a network backend that resolves, checks, and connects to the
    checked address itself (no second lookup, so DNS rebinding cannot swap the address after
    the check); TLS still verifies the certificate for the URL's host name (SNI). The client
    ignores the environment (no proxies, no netrc) and follows no redirects: the caller
    follows them by hand, and each hop's connection is checked again here.
Size
    Bodies are read raw and decoded here (``gzip``, ``deflate`` or none; the only encodings
    asked for) with a bounded decompressor, so neither the download nor its decompression can
    exceed ``limit``: a gzip bomb is ``too_large``, never a full inflation in memory.
Errors
    A refusal names the rule (``refused: 127.0.0.1 is a loopback address``); every other
    failure is generic (``could not connect``, ``timed out after 10s``), never the operating
    system's or the network's own words.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
import typing
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx

from connectors.base import ConfigError, ConnectorError, ErrorKind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
ACCEPT_ENCODING = "gzip, deflate"
_CHUNK = 64 * 1024

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_HOSTNAME = re.compile(
    r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$"
)


class FetchRefusedError(ConnectorError):
    """The fetch policy forbids this URL or address; ``reason`` names the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchFailedError(ConnectorError):
    """A download failed; ``kind`` is an ``ErrorKind``, ``reason`` a generic sentence."""

    def __init__(self, kind: str, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry = retry


_RULES: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda ip: ip.is_unspecified or ip in _THIS_NETWORK, "an unspecified address"),
    (lambda ip: ip.is_loopback, "a loopback address"),
    (lambda ip: ip.is_link_local, "a link-local address"),
    (lambda ip: ip.is_multicast, "a multicast address"),
    (lambda ip: ip.is_reserved, "a reserved address"),
    (lambda ip: ip.is_private, "a private address"),
    (lambda ip: isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
    (lambda ip: ip in _SHARED, "a shared (carrier-grade NAT) address"),
    (lambda ip: not ip.is_global, "a non-public address"),
)


def _embedded_rule(ip: ipaddress.IPv6Address) -> tuple[bool, str | None]:
    """``(judged, rule)`` for IPv6 forms that carry an IPv4 address (``judged``: no further
    rule applies)."""
    if ip.ipv4_mapped is not None:
        inner = address_rule(ip.ipv4_mapped)
        return True, f"{inner} (IPv4-mapped)" if inner else None
    if ip in _NAT64:
        inner = address_rule(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return True, f"{inner} (NAT64)" if inner else None
    if ip.sixtofour is not None and (inner := address_rule(ip.sixtofour)):
        return True, f"{inner} (6to4)"
    if ip.teredo is not None:
        return True, "a Teredo tunnel address"
    if ip in _COMPAT and not (ip.is_unspecified or ip.is_loopback):
        return True, "an IPv4-compatible IPv6 address"
    return False, None


def address_rule(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched (``"a loopback address"``), or ``None`` if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        judged, rule = _embedded_rule(ip)
        if judged:
            return rule
    return next((rule for applies, rule in _RULES if applies(ip)), None)


def _literal(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one in any form the resolver accepts; no lookup."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(found[0][4][0]))


def _is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def _host_key(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched. The default refuses every non-public address.

    ``allow_private``: no address rules at all. ``allow``: hosts (``name``, ``*.suffix``) and
    networks (CIDR or single addresses) allowed although not public. ``max_bytes``: the
    largest body (after decoding) a download keeps. ``timeout``: seconds per connect/read;
    ``deadline``: seconds for one whole download. ``hint``: appended to refusals (how an
    operator would allow the address).
    """

    allow_private: bool = False
    allow: tuple[str, ...] = ()
    schemes: frozenset[str] = frozenset({"http", "https"})
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = 10.0
    deadline: float = 300.0
    hint: str = ""
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.timeout <= 0 or self.deadline <= 0:
            raise ConfigError("need max_bytes >= 1, timeout > 0 and deadline > 0")
        if not self.schemes or not self.schemes <= {"http", "https"}:
            raise ConfigError("schemes must be http and/or https")
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for entry in self.allow:
            key = _host_key(entry)
            try:
                networks.append(ipaddress.ip_network(key, strict=False))
                continue
            except ValueError:
                pass
            try:
                key = key.encode("idna").decode("ascii") if not key.isascii() else key
            except UnicodeError:
                key = ""
            if not _HOSTNAME.match(key):
                raise ConfigError(
                    f"fetch allow-list entry {entry!r} is not a host name, *.suffix or network"
                )
            if key.startswith("*."):
                suffixes.append(key[1:])
            else:
                hosts.add(key)
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_suffixes", tuple(suffixes))
        object.__setattr__(self, "_networks", tuple(networks))

    # rules ------------------------------------------------------------------------------------

    def _host_allowed(self, host: str) -> bool:
        key = _host_key(host)
        return key in self._hosts or any(key.endswith(s) for s in self._suffixes)

    def _address_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in n for c in candidates for n in self._networks if c.version == n.version)

    def _refusal(self, what: str) -> FetchRefusedError:
        return FetchRefusedError(f"refused: {what}" + (f" ({self.hint})" if self.hint else ""))

    def check_url(self, url: str) -> None:
        """Raise ``FetchRefusedError`` for a URL refused on its face: another scheme, no host,
        or a host that is a forbidden literal address or a localhost name. No DNS lookup."""
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
            _ = parts.port
        except ValueError:
            raise FetchRefusedError("refused: not a valid URL") from None
        if parts.scheme.lower() not in self.schemes:
            allowed = " or ".join(sorted(self.schemes))
            raise FetchRefusedError(f"refused: only {allowed} URLs are fetched")
        if not host:
            raise FetchRefusedError("refused: the URL has no host")
        if self.allow_private or self._host_allowed(host):
            return
        if _is_localhost(_host_key(host)):
            raise self._refusal(f"{host} is a loopback name")
        ip = _literal(host)
        if ip is not None and not self._address_allowed(ip) and (rule := address_rule(ip)):
            raise self._refusal(f"{host} is {rule}")

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``: all of them checked, or a refusal."""
        key = _host_key(host)
        trusted = self.allow_private or self._host_allowed(key)
        if not trusted and _is_localhost(key):
            raise self._refusal(f"{host} is a loopback name")
        literal = _literal(host)
        try:
            found = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError, ValueError):
            raise FetchFailedError(
                ErrorKind.FETCH_ERROR, f"could not resolve {host}", retry=True
            ) from None
        ips = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not ips:
            raise FetchFailedError(ErrorKind.FETCH_ERROR, f"could not resolve {host}", retry=True)
        if trusted:
            return ips
        for text in ips:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if self._address_allowed(ip):
                continue
            if rule := address_rule(ip):
                said = "is" if literal is not None else "resolves to"
                raise self._refusal(f"{host} {said} {rule}")
        return ips

    # the client -------------------------------------------------------------------------------

    def client(self, *, user_agent: str, timeout: float | None = None) -> httpx.Client:
        """An httpx client whose every connection goes through this policy."""
        ssl_context = httpx.create_ssl_context(trust_env=False)
        transport = httpx.HTTPTransport(verify=ssl_context, trust_env=False)
        pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=8,
            max_keepalive_connections=4,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(self),
        )
        if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("httpx.HTTPTransport changed: cannot pin its connections")
        transport._pool = pool  # httpx exposes no network backend; its pool takes one
        return httpx.Client(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout or self.timeout),
            headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        )


class _PinnedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy checked, resolving each host once per connection."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[typing.Any, ...]] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for ip in self.policy.addresses(host, port):
            try:
                return super().connect_tcp(ip, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[tuple[typing.Any, ...]] | None = None,
    ) -> httpcore.NetworkStream:
        raise FetchRefusedError("refused: unix sockets are never fetched")


# downloads ------------------------------------------------------------------------------------


class Inflater:
    """Decodes a ``Content-Encoding`` (gzip, deflate or identity) a chunk at a time, never
    producing more than ``limit`` bytes in all: past it ``too_large`` is raised, or with
    ``truncate`` the output stops at ``limit`` and ``full`` is set."""

    def __init__(self, encoding: str, limit: int, *, truncate: bool = False) -> None:
        encoding = encoding.strip().lower()
        self._wbits: int | None
        if encoding in ("", "identity"):
            self._wbits = None
        elif encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped, as RFC 9110 says; raw is tried next
        else:
            raise FetchFailedError(
                ErrorKind.FETCH_ERROR, f"unsupported Content-Encoding {encoding[:40]!r}"
            )
        self.encoding = encoding or "identity"
        self.limit = limit
        self.truncate = truncate
        self.total = 0
        self.full = False
        self._started = False
        self._d = zlib.decompressobj(self._wbits) if self._wbits is not None else None

    def _count(self, data: bytes) -> bytes:
        if self.total + len(data) > self.limit:
            if not self.truncate:
                compressed = " once decompressed" if self._d is not None else ""
                raise FetchFailedError(
                    ErrorKind.TOO_LARGE,
                    f"over the {self.limit:,}-byte limit{compressed}: download abandoned",
                )
            data = data[: self.limit - self.total]
            self.full = True
        self.total += len(data)
        return data

    def feed(self, data: bytes) -> bytes:
        if self.full:
            return b""
        if self._d is None:
            return self._count(data)
        out: list[bytes] = []
        while not self.full:
            if self._d.eof:  # another gzip member may follow (RFC 1952); other bytes are not
                data = self._d.unused_data + data  # content: ignored, as browsers do
                if self._wbits != 16 + zlib.MAX_WBITS or not data.startswith(b"\x1f\x8b"):
                    break
                self._d = zlib.decompressobj(self._wbits)
            if not data:
                break
            try:
                chunk = self._d.decompress(data, self.limit - self.total + 1)
            except zlib.error:
                if self.encoding == "deflate" and not self._started:
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise FetchFailedError(
                    ErrorKind.FETCH_ERROR, f"the body is not valid {self.encoding} data"
                ) from None
            self._started = True
            out.append(self._count(chunk))
            data = self._d.unconsumed_tail
        return b"".join(out)

    def finish(self) -> bytes:
        if self._d is None or self.full:
            return b""
        return self._count(self._d.flush())


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """``data`` decoded from ``encoding`` (gzip, deflate, identity), at most ``limit`` bytes."""
    inflater = Inflater(encoding, limit)
    return inflater.feed(data) + inflater.finish()


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes


def download(
    client: httpx.Client, url: str, *, limit: int, deadline: float, truncate: bool = False
) -> Fetched:
    """One GET with its body decoded and bounded: at most ``limit`` bytes (``truncate``: the
    first ``limit`` bytes, no error) within ``deadline`` seconds. Redirects and error
    statuses come back without a body. Raises ``FetchRefusedError`` or ``FetchFailedError``
    (``retry`` set for timeouts and connection failures)."""
    started = time.monotonic()
    try:
        with client.stream("GET", url) as r:
            if r.status_code >= 300:
                return Fetched(url, r.status_code, r.headers, b"")
            body = _body(r, limit, truncate, started + deadline)
            return Fetched(url, r.status_code, r.headers, body)
    except (FetchRefusedError, FetchFailedError):
        raise
    except httpx.TimeoutException:
        after = client.timeout.read
        raise FetchFailedError(
            ErrorKind.FETCH_ERROR,
            f"timed out after {after:g}s" if after else "timed out",
            retry=True,
        ) from None
    except httpx.ConnectError:
        raise FetchFailedError(ErrorKind.FETCH_ERROR, "could not connect", retry=True) from None
    except httpx.RemoteProtocolError:
        raise FetchFailedError(
            ErrorKind.FETCH_ERROR, "the server's response was malformed", retry=True
        ) from None
    except httpx.TransportError:
        raise FetchFailedError(ErrorKind.FETCH_ERROR, "the connection failed", retry=True) from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        raise FetchFailedError(ErrorKind.FETCH_ERROR, "not a URL that can be fetched") from None


def _body(r: httpx.Response, limit: int, truncate: bool, deadline: float) -> bytes:
    encoding = r.headers.get("content-encoding", "")
    raw_limit = limit + _CHUNK if encoding else limit  # compressing can add a few bytes
    declared = r.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > raw_limit:
        raise FetchFailedError(
            ErrorKind.TOO_LARGE,
            f"{int(declared):,} bytes is over the {limit:,}-byte limit: not fetched",
        )
    inflater = Inflater(encoding, limit, truncate=truncate)
    chunks: list[bytes] = []
    raw = 0
    for chunk in r.iter_raw(_CHUNK):
        if time.monotonic() > deadline:
            raise FetchFailedError(ErrorKind.FETCH_ERROR, "took too long: download abandoned")
        raw += len(chunk)
        if raw > raw_limit and not truncate:
            raise FetchFailedError(
                ErrorKind.TOO_LARGE, f"over the {limit:,}-byte limit: download abandoned"
            )
        chunks.append(inflater.feed(chunk))
        if inflater.full:
            return b"".join(chunks)
    chunks.append(inflater.finish())
    return b"".join(chunks)
