"""Pattern PII redaction: each type, validators, modes, and the labelled set's thresholds."""

from __future__ import annotations

import pytest

from evals.pii.evaluate import load, score
from ragstack.errors import ConfigError
from ragstack.ingest.redacting import PATTERN_TYPES, PatternRedactor, find_pii, iban_ok, luhn_ok


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to ops+alerts@mail.example.org today", "EMAIL"),
        ("call (415) 555-0132 now", "PHONE"),
        ("call +44 20 7946 0958 now", "PHONE"),
        ("card 4111-1111-1111-1111 on file", "CREDIT_CARD"),
        ("amex 3782 822463 10005.", "CREDIT_CARD"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN"),
        ("ssn 123-45-6789 ok", "US_SSN"),
        ("from 192.168.10.20 port 22", "IP_ADDRESS"),
        ("from 2001:db8::8a2e:370:7334 port 22", "IP_ADDRESS"),
    ],
)
def test_each_type_is_masked(text: str, kind: str) -> None:
    redacted, counts = PatternRedactor().redact(text)
    assert counts == {kind: 1}
    assert f"<{kind}>" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 is not a card (Luhn fails)",
        "IBAN DE89 3704 0044 0532 0130 01 fails its checksum",
        "p < 0.05, n = 1,234, 95% CI 0.61-0.89, version 3.11.7, 2026-03-14 09:12:44",
        "doi:10.1038/nature12373 and ISBN 978-3-16-148410-0 and NCT01234567",
        "SSN-like 000-12-3456 and 666-12-3456 are never issued",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    assert PatternRedactor().redact(text) == (text, {})


def test_validators() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB83 WEST 1234 5698 7654 32")


def test_modes() -> None:
    text = "a@example.com wrote to b@example.com and again to a@example.com"
    one, counts = PatternRedactor("pseudonym", salt="s1").redact(text)
    tokens = one.split()
    assert counts == {"EMAIL": 3}
    assert tokens[0] == tokens[-1] != tokens[3], "same value, same token; others differ"
    two, _ = PatternRedactor("pseudonym", salt="s2").redact(text)
    assert one != two, "pseudonyms depend on the collection's salt"
    assert "example.com" not in one
    assert PatternRedactor("off").redact(text) == (text, {})
    with pytest.raises(ConfigError):
        PatternRedactor("shout")


def test_spans_are_exact_and_ordered() -> None:
    text = "x a@b.io y 10.0.0.1 z"
    spans = find_pii(text)
    assert [(s.kind, text[s.start : s.end]) for s in spans] == [
        ("EMAIL", "a@b.io"),
        ("IP_ADDRESS", "10.0.0.1"),
    ]


def test_labelled_set_thresholds() -> None:
    rows = load()
    gold = [s for r in rows for s in r["spans"] if s["type"] in PATTERN_TYPES]
    assert len([s for r in rows for s in r["spans"]]) >= 200 and len(gold) >= 200
    stats = score(rows)
    for kind in PATTERN_TYPES:
        assert stats[kind]["support"] >= 20, kind
        assert stats[kind]["recall"] >= 0.95, (kind, stats[kind])
        assert stats[kind]["precision"] >= 0.95, (kind, stats[kind])
    negatives = [r for r in rows if r["kind"] == "no_pii"]
    assert len(negatives) >= 50
    assert sum(len(find_pii(r["text"])) for r in negatives) == 0
