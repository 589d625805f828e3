"""The redactor: detect, resolve overlaps, replace.

Modes:

- ``mask`` (default): each value becomes its typed placeholder, ``<EMAIL>``, ``<PERSON>``.
- ``pseudonym``: each value becomes ``<TYPE_xxxxxxxx>``, the first 8 hex digits of
  HMAC-SHA256 under the collection's salt of the normalised value (``Ann@X.org`` and
  ``ann@x.org`` are one person; ``(415) 555-0132`` and ``+1 415 555 0132`` one phone). The
  same value gives the same token within a collection and a different one in another; the
  token cannot be reversed without the salt. 32 bits: two distinct values of one type share a
  token with probability about n²/2³³ (1 % at ~9,000 distinct values).
- ``off``: text passes through untouched.

Overlaps resolve deterministically: the higher score wins (checksum-validated patterns 1.0,
other patterns 0.9-0.95, NER 0.8), then the longer span, then the earlier one.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence

from ragstack.errors import ConfigError
from ragstack.redaction.ner import DEFAULT_NER_MODEL, SpacyNer
from ragstack.redaction.patterns import find_patterns
from ragstack.redaction.types import (
    MODES,
    NER_TYPES,
    PATTERN_TYPES,
    Detection,
    Mode,
    PiiType,
    RedactedSpan,
    Redaction,
)

_DIGITS = re.compile(r"\D")
_SPACES = re.compile(r"\s+")


def resolve_overlaps(found: Iterable[Detection]) -> list[Detection]:
    """Non-overlapping detections in text order: higher score, then longer, then earlier."""
    ranked = sorted(found, key=lambda d: (-d.score, d.start - d.end, d.start, d.type))
    starts: list[int] = []
    taken: list[Detection] = []
    for d in ranked:
        i = bisect.bisect_left(starts, d.start)
        if i > 0 and taken[i - 1].end > d.start:
            continue
        if i < len(taken) and taken[i].start < d.end:
            continue
        starts.insert(i, d.start)
        taken.insert(i, d)
    return taken


def normalise(kind: PiiType, value: str) -> str:
    """The form two spellings of one value share (the key of its pseudonym)."""
    if kind == "EMAIL":
        return value.lower()
    if kind == "PHONE":
        digits = _DIGITS.sub("", value)
        if value.startswith("+"):
            return "+" + digits
        if len(digits) == 10 and not value.startswith("0"):
            return "+1" + digits
        if len(digits) == 11 and digits.startswith("1"):
            return "+" + digits
        return digits
    if kind in ("CREDIT_CARD", "US_SSN"):
        return _DIGITS.sub("", value)
    if kind == "IBAN":
        return value.replace(" ", "").upper()
    if kind == "IP_ADDRESS":
        try:
            return str(ipaddress.ip_address(value.split("%", 1)[0]))
        except ValueError:
            return value.lower()
    return _SPACES.sub(" ", value).strip().casefold()


class Redactor:
    """Redacts PII of ``types`` in ``mode``.

    ``types`` defaults to the pattern types, plus PERSON and LOCATION when ``ner`` is true.
    ``salt`` is the collection's secret for pseudonyms (required in that mode). Cheap to
    construct; the NER model loads on first use or in ``warm_up``.
    """

    def __init__(
        self,
        mode: Mode = "mask",
        *,
        salt: str | bytes = b"",
        ner: bool = False,
        types: Iterable[PiiType] | None = None,
        ner_model: str = DEFAULT_NER_MODEL,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown PII mode {mode!r}: use one of {', '.join(MODES)}")
        chosen = (
            frozenset(types)
            if types is not None
            else PATTERN_TYPES | (NER_TYPES if ner else frozenset())
        )
        unknown = chosen - PATTERN_TYPES - NER_TYPES
        if unknown:
            raise ConfigError(f"unknown PII types: {', '.join(sorted(unknown))}")
        if chosen & NER_TYPES and not ner:
            raise ConfigError("PERSON and LOCATION need NER: construct with ner=True")
        key = salt.encode() if isinstance(salt, str) else bytes(salt)
        if mode == "pseudonym" and not key:
            raise ConfigError("pseudonym mode needs the collection's salt")
        self.mode: Mode = mode
        self.types: frozenset[PiiType] = chosen
        self._key = key
        self._pattern_types = chosen & PATTERN_TYPES
        self._ner = SpacyNer(ner_model) if chosen & NER_TYPES else None

    def __repr__(self) -> str:  # never shows the salt
        types = ",".join(sorted(self.types))
        return f"Redactor(mode={self.mode!r}, types={types}, ner={self._ner is not None})"

    @property
    def uses_ner(self) -> bool:
        return self._ner is not None

    def warm_up(self) -> None:
        """Load the NER model now rather than on the first text."""
        if self._ner is not None and self.mode != "off":
            self._ner.warm_up()

    def detect(self, text: str) -> list[Detection]:
        """Resolved detections in ``text`` (offsets only), in text order."""
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[list[Detection]]:
        found = [list(find_patterns(t, self._pattern_types)) for t in texts]
        if self._ner is not None:
            ner_types = self.types & NER_TYPES
            for mine, extra in zip(found, self._ner.find(texts, ner_types), strict=True):
                mine.extend(extra)
        return [resolve_overlaps(f) for f in found]

    def redact(self, text: str) -> Redaction:
        return self.redact_many([text])[0]

    def redact_many(self, texts: Sequence[str]) -> list[Redaction]:
        """``redact`` over many texts; NER runs them as one batch (much faster)."""
        if self.mode == "off":
            return [Redaction(t) for t in texts]
        return [self._apply(t, d) for t, d in zip(texts, self.detect_many(texts), strict=True)]

    def token(self, kind: PiiType, value: str) -> str:
        """The replacement for ``value`` of type ``kind`` in this redactor's mode."""
        if self.mode != "pseudonym":
            return f"<{kind}>"
        message = f"{kind}\x00{normalise(kind, value)}".encode()
        return f"<{kind}_{hmac.new(self._key, message, hashlib.sha256).hexdigest()[:8]}>"

    def _apply(self, text: str, found: list[Detection]) -> Redaction:
        if not found:
            return Redaction(text)
        out: list[str] = []
        spans: list[RedactedSpan] = []
        counts: dict[PiiType, int] = {}
        pos = 0
        length = 0
        for d in found:
            kept = text[pos : d.start]
            out.append(kept)
            length += len(kept)
            replacement = self.token(d.type, text[d.start : d.end])
            out.append(replacement)
            spans.append(
                RedactedSpan(d.type, d.start, d.end, replacement, length, length + len(replacement))
            )
            length += len(replacement)
            counts[d.type] = counts.get(d.type, 0) + 1
            pos = d.end
        out.append(text[pos:])
        return Redaction("".join(out), counts, tuple(spans))


def make_redactor(mode: str, *, ner: bool = False, salt: str | bytes = b"") -> Redactor:
    """A collection's redactor from its settings (``mode`` as stored, validated here)."""
    for known in MODES:
        if mode == known:
            return Redactor(known, ner=ner, salt=salt)
    raise ConfigError(f"unknown PII mode {mode!r}: use one of {', '.join(MODES)}")
