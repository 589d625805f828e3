"""PII redaction applied to every block before anything is embedded, indexed or stored.

Pattern types (on by default, compiled regexes plus validators, no model): EMAIL, PHONE,
CREDIT_CARD (Luhn), IBAN (mod-97), US_SSN, IP_ADDRESS (v4 and v6). Modes: ``mask`` replaces
with ``<TYPE>``; ``pseudonym`` with ``<TYPE_xxxxxxxx>``, an HMAC of the value under the
collection's salt (the same value gives the same token within a collection); ``off``.
Overlapping matches resolve to the longest, then the earliest. Originals never leave
``redact``: the result carries only the new text and counts per type.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from ragstack.errors import ConfigError


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _card_ok(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _ipv4_ok(text: str) -> str | None:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return text


def _ipv6_ok(text: str) -> str | None:
    """The IPv6 address in a candidate, dropping a trailing ``:port`` (as logs write it)."""
    for candidate in (text, text.rsplit(":", 1)[0]):
        if candidate.count(":") < 2:
            return None
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return candidate
    return None


def _ssn_ok(text: str) -> bool:
    area, group, serial = re.split(r"[- ]", text)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return (8 if text.startswith("+") else 9) <= len(digits) <= 15


@dataclass(frozen=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    trim: Callable[[str], str | None] | None = None  # the PII prefix of a match, or None


_PATTERNS = (
    _Pattern(
        "EMAIL",
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
        ),
    ),
    _Pattern(
        "IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), iban_ok
    ),
    # digits in groups; a decimal point before or after means a measurement, not a card
    _Pattern(
        "CREDIT_CARD", re.compile(r"(?<!\d)(?<!\d\.)\d(?:[ -]?\d){12,18}(?!\d)(?!\.\d)"), _card_ok
    ),
    _Pattern("US_SSN", re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])"), _ssn_ok),
    _Pattern(
        "IP_ADDRESS",
        re.compile(
            r"(?<![\w.])(?<!EC )(?<!EC:)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
            r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
        ),
        trim=_ipv4_ok,
    ),
    _Pattern(
        "IP_ADDRESS",
        re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}(?![\w:])"),
        trim=_ipv6_ok,
    ),
    _Pattern(
        "PHONE",
        re.compile(
            r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}"
            r"[ .-]\d{4}(?![\w])(?![ .-]\d)"
        ),
        _phone_ok,
    ),
    _Pattern(
        "PHONE",
        re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]\(?\d{1,5}\)?){2,4}(?![\w])(?![ .-]\d)"),
        _phone_ok,
    ),
)
PATTERN_TYPES = frozenset(p.kind for p in _PATTERNS)


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


def find_pii(text: str, kinds: frozenset[str] | None = None) -> list[Span]:
    """Non-overlapping PII spans, longest first among overlaps, in text order."""
    found: list[Span] = []
    for p in _PATTERNS:
        if kinds is not None and p.kind not in kinds:
            continue
        for m in p.regex.finditer(text):
            value = m.group()
            if p.trim is not None:
                kept = p.trim(value)
                if kept:
                    found.append(Span(p.kind, m.start(), m.start() + len(kept)))
            elif p.valid is None or p.valid(value):
                found.append(Span(p.kind, m.start(), m.end()))
    found.sort(key=lambda s: (-(s.end - s.start), s.start))
    taken: list[Span] = []
    for s in found:
        if all(s.end <= t.start or s.start >= t.end for t in taken):
            taken.append(s)
    return sorted(taken, key=lambda s: s.start)


class PatternRedactor:
    """``Redactor`` for the pattern types; ``mode`` is mask, pseudonym or off."""

    def __init__(self, mode: str = "mask", *, salt: str = "") -> None:
        if mode not in ("mask", "pseudonym", "off"):
            raise ConfigError(f"unknown PII mode {mode!r}: use mask, pseudonym or off")
        self.mode = mode
        self._key = salt.encode()

    def _token(self, kind: str, value: str) -> str:
        if self.mode == "mask":
            return f"<{kind}>"
        digest = hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"<{kind}_{digest[:8]}>"

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        if self.mode == "off" or not text:
            return text, {}
        spans = find_pii(text)
        if not spans:
            return text, {}
        out: list[str] = []
        counts: dict[str, int] = {}
        pos = 0
        for s in spans:
            out.append(text[pos : s.start])
            out.append(self._token(s.kind, text[s.start : s.end]))
            counts[s.kind] = counts.get(s.kind, 0) + 1
            pos = s.end
        out.append(text[pos:])
        return "".join(out), counts


def make_redactor(mode: str, *, ner: bool, salt: str) -> PatternRedactor:
    """The collection's redactor. NER types (names, places) are not wired in yet."""
    if ner:
        raise ConfigError("NER redaction (RAGSTACK_PII_NER) is not available in this build yet")
    return PatternRedactor(mode, salt=salt)
