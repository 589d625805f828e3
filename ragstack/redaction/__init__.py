"""PII redaction before anything is embedded, indexed or stored.

Pattern types (EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, IP_ADDRESS) are on by default and
need no model; PERSON and LOCATION come from spaCy NER and are opt-in (``ner=True``)::

    redactor = Redactor("pseudonym", salt=collection_salt, ner=True)
    result = redactor.redact(text)      # Redaction(text, counts, spans)

Importing this package is cheap: spaCy loads only when NER first runs.
"""

from ragstack.redaction.patterns import iban_ok, luhn_ok
from ragstack.redaction.redactor import Redactor, make_redactor, normalise, resolve_overlaps
from ragstack.redaction.types import (
    ALL_TYPES,
    MODES,
    NER_TYPES,
    PATTERN_TYPES,
    Detection,
    Mode,
    PiiType,
    RedactedSpan,
    Redaction,
)

__all__ = [
    "ALL_TYPES",
    "MODES",
    "NER_TYPES",
    "PATTERN_TYPES",
    "Detection",
    "Mode",
    "PiiType",
    "RedactedSpan",
    "Redaction",
    "Redactor",
    "iban_ok",
    "luhn_ok",
    "make_redactor",
    "normalise",
    "resolve_overlaps",
]
