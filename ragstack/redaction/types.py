"""What redaction finds and what it returns: offsets and replacements, never original values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

PiiType = Literal[
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "PERSON", "LOCATION"
]
Mode = Literal["mask", "pseudonym", "off"]
Source = Literal["pattern", "ner"]

PATTERN_TYPES: frozenset[PiiType] = frozenset(
    ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS")
)
"""Found by compiled patterns plus validators; on by default, no model."""
NER_TYPES: frozenset[PiiType] = frozenset(("PERSON", "LOCATION"))
"""Found by a spaCy NER model; opt-in (slower, and they damage eponyms)."""
ALL_TYPES: frozenset[PiiType] = frozenset(get_args(PiiType))
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True, slots=True)
class Detection:
    """A PII value at ``text[start:end]``; the value itself is not kept."""

    type: PiiType
    start: int
    end: int
    score: float
    source: Source


@dataclass(frozen=True, slots=True)
class RedactedSpan:
    """One replacement: ``original[start:end]`` became ``replacement``, which sits at
    ``redacted[redacted_start:redacted_end]``."""

    type: PiiType
    start: int
    end: int
    replacement: str
    redacted_start: int
    redacted_end: int


@dataclass(frozen=True, slots=True)
class Redaction:
    """The redacted text, how many values of each type it replaced, and where.

    Safe to store and log: it holds placeholders or keyed pseudonyms and offsets, never the
    values it replaced (those are only in the caller's original text).
    """

    text: str
    counts: Mapping[PiiType, int] = field(default_factory=dict)
    spans: tuple[RedactedSpan, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.spans)
