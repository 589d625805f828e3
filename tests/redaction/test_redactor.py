"""Modes, pseudonyms, overlaps, configuration errors, and what a Redaction may show."""

from __future__ import annotations

import re

import pytest

from ragstack.errors import ConfigError
from ragstack.redaction import (
    PATTERN_TYPES,
    Detection,
    Redactor,
    make_redactor,
    resolve_overlaps,
)

TEXT = "a@example.com wrote to b@example.com and again to A@Example.com"


def test_mask_is_the_default() -> None:
    result = Redactor().redact(TEXT)
    assert result.text == "<EMAIL> wrote to <EMAIL> and again to <EMAIL>"
    assert dict(result.counts) == {"EMAIL": 3}


def test_pseudonyms_are_stable_within_a_salt_and_differ_across_salts() -> None:
    one = Redactor("pseudonym", salt="collection-1").redact(TEXT)
    tokens = re.findall(r"<EMAIL_[0-9a-f]{8}>", one.text)
    assert len(tokens) == 3
    assert tokens[0] == tokens[2] != tokens[1], "same value (any case), same token"
    again = Redactor("pseudonym", salt="collection-1").redact(TEXT)
    assert again.text == one.text, "stable across redactor instances"
    other = Redactor("pseudonym", salt="collection-2").redact(TEXT)
    assert other.text != one.text, "pseudonyms depend on the collection's salt"
    assert "example.com" not in one.text + other.text


def test_pseudonyms_normalise_spellings_of_one_value() -> None:
    r = Redactor("pseudonym", salt=b"s")
    a = r.redact("call (415) 555-0132 or +1 415 555 0132 or 415.555.0132")
    assert len({s.replacement for s in a.spans}) == 1
    b = r.redact("IBAN DE89 3704 0044 0532 0130 00 = DE89370400440532013000")
    assert len({s.replacement for s in b.spans}) == 1
    c = r.redact("card 4111 1111 1111 1111 vs 5555 5555 5555 4444")
    assert len({s.replacement for s in c.spans}) == 2


def test_pseudonym_mode_needs_a_salt() -> None:
    with pytest.raises(ConfigError, match="salt"):
        Redactor("pseudonym")


def test_off_passes_text_through() -> None:
    result = Redactor("off").redact(TEXT)
    assert result.text == TEXT
    assert not result.counts
    assert not result.changed


def test_bad_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mode"):
        make_redactor("shout")
    with pytest.raises(ConfigError, match="NER"):
        Redactor(types=["PERSON"])
    with pytest.raises(ConfigError, match="unknown"):
        Redactor(types=["PASSPORT"])  # type: ignore[list-item]
    assert make_redactor("mask").types == PATTERN_TYPES
    assert make_redactor("off", ner=True).uses_ner


def test_types_can_be_narrowed() -> None:
    result = Redactor(types=["EMAIL"]).redact("a@b.io from 10.0.0.1")
    assert result.text == "<EMAIL> from 10.0.0.1"


def test_nothing_original_in_reprs() -> None:
    secrets = ["maria.garcia@example.com", "4111 1111 1111 1111", "123-45-6789", "10.1.2.3"]
    text = "Mail {} card {} SSN {} host {}".format(*secrets)
    for mode in ("mask", "pseudonym"):
        redactor = Redactor(mode, salt="pepper")
        result = redactor.redact(text)
        shown = repr(result) + str(result) + repr(result.spans) + repr(redactor)
        shown += repr(redactor.detect(text))
        assert len(result.spans) == 4
        for secret in secrets:
            assert secret not in shown
        assert "pepper" not in repr(redactor)


def test_overlaps_resolve_by_score_then_length_then_position() -> None:
    found = [
        Detection("PERSON", 0, 20, 0.8, "ner"),
        Detection("EMAIL", 5, 15, 0.95, "pattern"),
        Detection("PHONE", 30, 40, 0.9, "pattern"),
        Detection("US_SSN", 32, 38, 0.9, "pattern"),
        Detection("IP_ADDRESS", 50, 60, 0.95, "pattern"),
        Detection("PHONE", 55, 65, 0.95, "pattern"),
    ]
    kept = resolve_overlaps(found)
    assert [(d.type, d.start) for d in kept] == [
        ("EMAIL", 5),
        ("PHONE", 30),
        ("IP_ADDRESS", 50),
    ]
    assert resolve_overlaps(reversed(found)) == kept, "independent of input order"


def test_redact_many_matches_redact() -> None:
    texts = ["a@b.io", "", "nothing here", "call (415) 555-0132"]
    r = Redactor()
    assert r.redact_many(texts) == [r.redact(t) for t in texts]
