"""Pattern PII: every type found and masked, validators, look-alikes, offsets, speed."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ragstack.redaction import Redactor, iban_ok, luhn_ok


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to ops+alerts@mail.example.org today", "EMAIL", "ops+alerts@mail.example.org"),
        ("Contact: Ann.Lee@Example.CO.UK.", "EMAIL", "Ann.Lee@Example.CO.UK"),
        ("call (415) 555-0132 now", "PHONE", "(415) 555-0132"),
        ("call 415.555.0132 now", "PHONE", "415.555.0132"),
        ("call +1-415-555-0132 now", "PHONE", "+1-415-555-0132"),
        ("call +44 20 7946 0958 now", "PHONE", "+44 20 7946 0958"),
        ("mobile +44 7700 900123.", "PHONE", "+44 7700 900123"),
        ("Tel.: +49 (0)30 1234 5678;", "PHONE", "+49 (0)30 1234 5678"),
        ("ring 020 7946 0958 please", "PHONE", "020 7946 0958"),
        ("name,phone\nAnn,(415) 555-0132", "PHONE", "(415) 555-0132"),
        ("card 4111-1111-1111-1111 on file", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("card 4111111111111111, thanks", "CREDIT_CARD", "4111111111111111"),
        ("amex 3782 822463 10005.", "CREDIT_CARD", "3782 822463 10005"),
        ("mc 2223 0031 2200 3222 exp 12/27", "CREDIT_CARD", "2223 0031 2200 3222"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432.", "IBAN", "GB82WEST12345698765432"),
        ("NO93 8601 1117 947 due", "IBAN", "NO93 8601 1117 947"),
        ("ssn 123-45-6789 ok", "US_SSN", "123-45-6789"),
        ("SSN: 123456789.", "US_SSN", "123456789"),
        ("from 192.168.10.20 port 22", "IP_ADDRESS", "192.168.10.20"),
        ("src=10.0.0.5:8080 dst", "IP_ADDRESS", "10.0.0.5"),
        ("from 2001:db8::8a2e:370:7334 port 22", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("peer [fe80::1ff:fe23:4567:890a]:443 up", "IP_ADDRESS", "fe80::1ff:fe23:4567:890a"),
        ("mapped ::ffff:192.0.2.128 seen", "IP_ADDRESS", "::ffff:192.0.2.128"),
    ],
)
def test_each_type_is_found_and_masked(text: str, kind: str, value: str) -> None:
    result = Redactor().redact(text)
    assert dict(result.counts) == {kind: 1}
    (span,) = result.spans
    assert text[span.start : span.end] == value
    assert result.text == text.replace(value, f"<{kind}>")
    assert value not in result.text


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails the Luhn check",
        "card 4111111111111112 fails the Luhn check too",
        "IBAN DE89 3704 0044 0532 0130 01 fails its checksum",
        "IBAN DE89370400440532013000X is longer than a German IBAN",
        "XX89 3704 0044 0532 0130 00 is no country",
        "000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567 and 123-45-0000 are never issued",
        "ORCID 0000-0002-1825-0097 and EAN 4006381333931 are not cards",
        "p < 0.05, n = 1,234, 95% CI 0.61-0.89, version 3.11.7, 2026-03-14 09:12:44",
        "doi:10.1038/nature12373, ISBN 978-3-16-148410-0, PMID 31234567 and NCT01234567",
        "Order 5512-8871-20 and ticket 55-1201 shipped 12.4 kg on 14/03/2026",
        "Tyrosine hydroxylase (EC 1.14.16.2), section 4.2.1.3 and version 1.2.3.4",
        "the MAC is 00:1a:2b:3c:4d:5e, the time 12:30:45, std::vector and a::b",
        "revenue 1,234,567.89 and 4111 units; 250 300 1000 400 in a list",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    result = Redactor().redact(text)
    assert result.text == text, result.spans
    assert not result.changed


def test_validators() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("GB83 WEST 1234 5698 7654 32")
    assert not iban_ok("GB82 WEST 1234 5698 7654 3")  # one character short for GB


def test_offsets_map_original_to_redacted() -> None:
    text = "x ann@b.io y 10.0.0.1 z (415) 555-0132 end"
    result = Redactor().redact(text)
    assert [(s.type, text[s.start : s.end]) for s in result.spans] == [
        ("EMAIL", "ann@b.io"),
        ("IP_ADDRESS", "10.0.0.1"),
        ("PHONE", "(415) 555-0132"),
    ]
    for s in result.spans:
        assert result.text[s.redacted_start : s.redacted_end] == s.replacement
    # the text between spans is unchanged
    rebuilt, pos = [], 0
    for s in result.spans:
        rebuilt.append(text[pos : s.start] + s.replacement)
        pos = s.end
    assert "".join(rebuilt) + text[pos:] == result.text


def test_pattern_path_never_imports_spacy() -> None:
    code = (
        "import sys\n"
        "from ragstack.redaction import Redactor\n"
        "r = Redactor().redact('mail ann@b.io or call (415) 555-0132')\n"
        "assert r.counts == {'EMAIL': 1, 'PHONE': 1}, r\n"
        "heavy = [m for m in ('spacy', 'presidio_analyzer', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pattern_redaction_is_fast() -> None:
    """Well over 1 MB/s on one core, text by text as ingest calls it."""
    from evals.pii.evaluate import load

    texts = [r["text"] for r in load()] * 10
    chars = sum(len(t) for t in texts)
    redactor = Redactor()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for t in texts:
            redactor.redact(t)
        best = min(best, time.perf_counter() - t0)
    assert chars / best > 1_000_000, f"{chars / best / 1e6:.2f} M chars/s"
