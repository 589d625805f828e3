"""Pattern PII: compiled regexes that propose candidates, validators that accept them.

Each candidate must pass a check that a random look-alike usually fails: the Luhn digit for
card numbers, ISO 13616 mod-97 and the country's length for IBANs, SSA issuing rules for
SSNs, ``ipaddress`` for IPv4/IPv6, digit counts and separator consistency for phone numbers.
Numbers in scientific and technical prose (p-values, sample sizes, DOIs, ISBNs, dates,
version and section numbers, EC numbers) are kept out by look-arounds and context words.

Pure stdlib: no model, no spaCy; runs on every chunk at ingest.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ragstack.redaction.types import Detection, PiiType

Check = Callable[[str, "re.Match[str]"], "tuple[int, int] | None"]
"""``(text, candidate) -> (start, end)`` of the accepted value, or None to reject."""

# ISO 13616 lengths of every IBAN country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """True when the string of digits passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    """True for a well-formed IBAN: known country, its exact length, mod-97 == 1."""
    compact = value.replace(" ", "").upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 001-665, 667-899; group 01-99; serial 0001-9999."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# -- checks ------------------------------------------------------------------------------------

_NON_DIGIT = re.compile(r"\D")
# Words after which a dotted quad is a version, section or enzyme number, not an address.
_NOT_IP_CONTEXT = re.compile(
    r"(?:\b(?:v|ver|version|release|rel|build|section|sec|chapter|ch|figure|fig|table|tab|"
    r"clause|rule|step|oid|ec|item|part|appendix|para|paragraph|no|nr|isbn)\.?|§)\s*[:#]?\s*$",
    re.IGNORECASE,
)


def _whole(_text: str, m: re.Match[str]) -> tuple[int, int]:
    return m.span()


def _check_card(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    digits = _NON_DIGIT.sub("", m.group())
    # Issuers' first digits: 2 and 5 Mastercard, 3 Amex/Diners/JCB, 4 Visa, 6 Discover etc.
    # 13 digits (old Visa) is left out: it is also the length of EAN-13 product barcodes.
    if digits[0] not in "23456" or not 14 <= len(digits) <= 19:
        return None
    return m.span() if luhn_ok(digits) else None


def _check_iban(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """Accept the country's exact length from the start of the candidate (a following
    group of four, such as a year, is not swallowed)."""
    value = m.group()
    length = IBAN_LENGTHS.get(value[:2])
    if length is None:
        return None
    seen = 0
    for i, ch in enumerate(value):
        if ch != " ":
            seen += 1
            if seen == length:
                end = i + 1
                if end < len(value) and value[end] != " ":
                    return None  # the run continues past the IBAN's length: not one
                return (m.start(), m.start() + end) if iban_ok(value[:end]) else None
    return None


def _check_ssn(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    group = "ssn" if m.group("ssn") else "bare"  # bare nine digits only after "SSN"
    digits = _NON_DIGIT.sub("", m.group(group))
    if not ssn_ok(digits[:3], digits[3:5], digits[5:]):
        return None
    return m.span(group)


def _check_ipv4(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    if _NOT_IP_CONTEXT.search(text, max(0, m.start() - 16), m.start()):
        return None
    return m.span()


def _check_ipv6(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    value = m.group()
    if sum(c.isalnum() for c in value.split("%", 1)[0]) < 5:
        return None  # "a::b", "::1": too short to be a host address worth hiding
    candidates = [value]
    if value.count(":") > 2 and "%" not in value:
        candidates.append(value.rsplit(":", 1)[0])  # a trailing :port, as logs write it
    for candidate in candidates:
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return m.start(), m.start() + len(candidate)
    return None


def _check_phone(_text: str, m: re.Match[str]) -> tuple[int, int] | None:
    value = m.group()
    digits = _NON_DIGIT.sub("", value)
    if value.startswith("+"):
        ok = 8 <= len(digits) <= 15
    elif value.startswith("0"):
        ok = 10 <= len(digits) <= 11
    else:  # North American: [1] NXX NXX XXXX with one kind of separator
        national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        seps = set(re.sub(r"[\d()]", "", value.removeprefix("1").lstrip(" .-")))
        ok = len(national) == 10 and national[0] >= "2" and len(seps - {" "}) <= 1
        if ok and value[0] != "(" and seps == {" "}:
            ok = national[3] >= "2"  # bare "NXX NXX XXXX" needs a plausible exchange
    return m.span() if ok else None


@dataclass(frozen=True, slots=True)
class Pattern:
    type: PiiType
    regex: re.Pattern[str]
    check: Check
    score: float
    needs: str  # a character the text must contain for the regex to have a chance


_DIGIT_END = r"(?!\d|[.,]\d)"

PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "EMAIL",
        re.compile(
            r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
        ),
        _whole,
        0.95,
        "@",
    ),
    Pattern(
        "IBAN",
        re.compile(
            r"(?<![\w-])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
            r"(?![\w-])"
        ),
        _check_iban,
        1.0,
        "",
    ),
    Pattern(
        "CREDIT_CARD",
        re.compile(
            r"(?<![\w.+/-])(?<!\d,)"
            r"(?:\d{4}([ -])\d{4}\1\d{4}\1\d{4}|\d{4}([ -])\d{6}\2\d{4,5}|\d{14,19})" + _DIGIT_END
        ),
        _check_card,
        1.0,
        "",
    ),
    Pattern(
        "US_SSN",
        re.compile(
            r"(?<![\w./-])(?<!\d,)(?P<ssn>\d{3}([- ])\d{2}\2\d{4})(?![\w-]|[.,]\d)"
            r"|(?i:\b(?:ssn|social security(?: number| no\.?)?)\s*(?:[:#]|is)?\s*)"
            r"(?P<bare>\d{9})(?!\w)"
        ),
        _check_ssn,
        0.95,
        "",
    ),
    Pattern(
        "IP_ADDRESS",
        re.compile(
            r"(?<![\w.-])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
            r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w-]|\.\d)"
        ),
        _check_ipv4,
        0.95,
        ".",
    ),
    Pattern(
        "IP_ADDRESS",
        re.compile(
            r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{0,4}:){2,6}\d{1,3}(?:\.\d{1,3}){3}"
            r"|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8})(?:%[\w.]+|:\d{1,5})?(?![\w:]|\.\d)"
        ),
        _check_ipv6,
        0.95,
        ":",
    ),
    Pattern(
        "PHONE",
        re.compile(
            r"(?<![\w+/.-])(?<!\d,)(?<!\d )(?:"
            r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,8}|[ .-]\d{1,8}){1,5}"  # +44 20 7946 0958
            r"|\+\d{8,14}"  # +4915123456789
            r"|(?:1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (415) 555-0132
            r"|(?:1[ .-])?\d{3}([ .-])\d{3}\1\d{4}"  # 415-555-0132, 415.555.0132
            r"|0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}"  # 020 7946 0958 (national trunk prefix)
            r")(?!\w|[.,-]?\d| \d)"
        ),
        _check_phone,
        0.9,
        "",
    ),
)


_ANY_DIGIT = re.compile(r"\d")


def find_patterns(text: str, types: frozenset[PiiType]) -> Iterator[Detection]:
    """Every validated pattern candidate of ``types`` in ``text`` (overlaps not resolved)."""
    if not text or (_ANY_DIGIT.search(text) is None and "@" not in text):
        return
    for p in PATTERNS:
        if p.type not in types or (p.needs and p.needs not in text):
            continue
        for m in p.regex.finditer(text):
            span = p.check(text, m)
            if span is not None:
                yield Detection(p.type, span[0], span[1], p.score, "pattern")
