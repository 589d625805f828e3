"""Every file of the shared mixed-docs sample is parsed to text or refused with a clear reason.

One process, one pass (about two minutes; DA-619p.pdf alone takes about a minute, pdfminer's
layout analysis of 619 pages). The summary table (outcomes per extension) is printed.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import pytest

from ragstack.errors import InputError, ParseError, UnsupportedDocumentError
from ragstack.parsing import DocumentParser

pytestmark = pytest.mark.slow
REASONS = ("unsupported", "password-protected", "corrupt", "empty", "too large")

# Files whose outcome is known (the sample's own names say what they are).
EXPECTED = {
    "CantinaBand3.wav": "unsupported",
    "simple.zip": "unsupported",
    "img/DA-1p.png": "unsupported",
    "pdf/password.pdf": "password-protected",
    "password_protected.xlsx": "password-protected",
    "fake-encrypted.msg": "password-protected",
    "eml/fake-encrypted.eml": "password-protected",
    "empty.txt": "empty",
    "fake-text-all-whitespace.txt": "empty",
    "fake-text-utf-16.txt": "parsed",
    "fake-text-utf-16-le.txt": "parsed",
    "fake-text-utf-16-be.txt": "parsed",
    "fake-text-utf-32.txt": "parsed",
    "stanley-cups-utf-16.csv": "parsed",
    "example-steelJIS-datasheet-utf-16.html": "parsed",
    "factbook-utf-16.xml": "parsed",
    "fake-html-cp1252.html": "parsed",
    "umlauts-non-utf8.md": "parsed",
    "eml/mime-multipart-digest.eml": "parsed",
    "winter-sports.epub": "parsed",
    "fake.odt": "parsed",
    "fake-doc.rtf": "parsed",
    "fake-email.msg": "parsed",
    "tests-example.xls": "parsed",
}


def table(title: str, rows: dict[str, Counter[str]], columns: list[str]) -> str:
    header = ["", *columns, "total"]
    body = [[key, *(str(c[col]) for col in columns), str(c.total())] for key, c in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def test_every_mixed_doc_is_parsed_or_explained(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared_data / "mixed-docs"
    manifest = folder / "MANIFEST.tsv"
    names = [line.split("\t")[1] for line in manifest.read_text().splitlines() if line.strip()]
    assert len(names) >= 240
    parser = DocumentParser()
    outcome: dict[str, str] = {}
    reasons: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name in names:
        data = (folder / name).read_bytes()
        t0 = time.perf_counter()
        try:
            doc = parser.parse(data, filename=PurePosixPath(name).name, mime=None)
        except InputError as exc:
            reason = str(exc)
            kind = reason.split(":", 1)[0]
            assert kind in REASONS, (name, reason)
            assert isinstance(exc, ParseError | UnsupportedDocumentError), (name, exc)
            assert len(reason) > len(kind) + 10, (name, reason)  # says why, not just what
            outcome[name], reasons[name] = kind, reason
        else:
            assert doc.text.strip(), name
            for el in doc.elements:
                assert doc.text[el.start : el.end] == el.text, name
            outcome[name] = "parsed"
        seconds[name] = time.perf_counter() - t0

    by_ext: dict[str, Counter[str]] = defaultdict(Counter)
    for name, kind in sorted(outcome.items()):
        by_ext[PurePosixPath(name).suffix.lower() or "(none)"][kind] += 1
    totals = Counter(outcome.values())
    columns = ["parsed", *REASONS]
    slowest = sorted(seconds.items(), key=lambda kv: -kv[1])[:3]
    with capsys.disabled():
        print()
        print(table("mixed-docs outcomes per extension", dict(sorted(by_ext.items())), columns))
        print(f"all: {dict(totals)}; slowest: " + ", ".join(f"{n} {s:.1f}s" for n, s in slowest))
        for name, reason in sorted(reasons.items()):
            print(f"  {name}: {reason}")

    assert len(outcome) == len(names)
    for name, expected in EXPECTED.items():
        assert outcome[name] == expected, (name, reasons.get(name))
    assert totals["parsed"] >= 200, totals
