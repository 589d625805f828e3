"""``ragstack ingest ../shared/data/mixed-docs``: every file is ingested or listed with a clear
reason, one bad file never stops the run, and SQL and every index agree afterwards.

Through the service layer the CLI calls, with the hashing embedder (parsing is what this
exercises); one pass of about a minute. The outcomes per extension are printed.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import pytest

from ragstack.search import Filters
from ragstack.service import IngestRequest, SourceSpec
from tests.ragstack.conftest import Factory

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tesseract")]  # OCR: real Tesseract
REASONS = (
    "unsupported",
    "password_protected",
    "corrupt",
    "empty",
    "too_large",
    "no_text",
    "ocr_unavailable",
    "ocr_language_missing",
)

# Files whose outcome is known (the sample's own names say what they are).
EXPECTED = {
    "CantinaBand3.wav": "unsupported",
    "simple.zip": "unsupported",
    "img/DA-1p.png": "ingested",  # OCR (Tesseract, eng)
    "img/DA-1p.heic": "ingested",
    "img/layout-parser-paper-combined.tiff": "ingested",
    "pdf/single_table.pdf": "ingested",  # a scanned table
    "img/chi_sim_image.jpeg": "ocr_language_missing",  # Chinese: no chi_sim pack
    "img/jpn-vert.jpeg": "ocr_language_missing",
    "img/bmp_24.bmp": "no_text",  # a picture without text
    "pdf/password.pdf": "password_protected",
    "password_protected.xlsx": "password_protected",
    "fake-encrypted.msg": "password_protected",
    "eml/fake-encrypted.eml": "password_protected",
    "empty.txt": "empty",
    "fake-text-all-whitespace.txt": "empty",
    "fake-text-utf-16.txt": "ingested",
    "fake-text-utf-16-le.txt": "ingested",
    "fake-text-utf-16-be.txt": "ingested",
    "fake-text-utf-32.txt": "ingested",
    "stanley-cups-utf-16.csv": "ingested",
    "example-steelJIS-datasheet-utf-16.html": "ingested",
    "factbook-utf-16.xml": "ingested",
    "fake-html-cp1252.html": "ingested",
    "umlauts-non-utf8.md": "ingested",
    "eml/mime-multipart-digest.eml": "ingested",
    "winter-sports.epub": "ingested",
    "fake.odt": "ingested",
    "fake-doc.rtf": "ingested",
    "fake-email.msg": "ingested",
    "tests-example.xls": "ingested",
}


# Words in image files and scanned pages (read by eye), one file per format at least.
KNOWN_WORDS = {
    "img/DA-1p.heic": "maleficar",
    "img/double-column-A.jpg": "SUBCHAPTER",
    "img/english-and-korean.png": "INSTRUCTIONS",
    "img/layout-parser-paper-fast.tiff": "LayoutParser",
    "pdf/single_table.pdf": "Chipper",
    "pdf/table-multi-row-column-cells.pdf": "Dexterity",
}


def table(title: str, rows: dict[str, Counter[str]], columns: list[str]) -> str:
    header = ["", *columns, "total"]
    body = [[key, *(str(c[col]) for col in columns), str(c.total())] for key, c in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def relative(uri: str, folder: Path) -> str:
    assert uri.startswith(folder.as_uri() + "/"), uri
    return unquote(uri.removeprefix(folder.as_uri() + "/"))


def test_every_mixed_doc_is_ingested_or_explained(
    shared_data: Path, make_service: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared_data / "mixed-docs"
    manifest = folder / "MANIFEST.tsv"
    names = [line.split("\t")[1] for line in manifest.read_text().splitlines() if line.strip()]
    assert len(names) >= 240
    svc = make_service(chunk_max_tokens=256, chunk_overlap_tokens=32)
    summary = svc.ingest(IngestRequest("mixed", [SourceSpec(str(folder))]), principal="user:alice")
    outcome: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for p in summary.problems:
        name = relative(p.uri, folder)
        assert p.kind in REASONS, (name, p.kind, p.reason)
        assert len(p.reason) > 20, (name, p.reason)  # says why, not just what
        outcome[name], reasons[name] = p.kind, p.reason
    docs = svc.documents("mixed", limit=10_000)
    con = sqlite3.connect(svc.settings.data_dir / "ragstack.db")
    texts = dict(con.execute("SELECT id, text FROM documents").fetchall())
    con.close()
    for d in docs:
        name = relative(d.uri, folder)
        outcome[name] = "ingested"
        for c in svc.chunks("mixed", d.id):
            assert texts[d.id][c.char_start : c.char_end] == c.text, name

    by_ext: dict[str, Counter[str]] = defaultdict(Counter)
    for name, kind in sorted(outcome.items()):
        by_ext[PurePosixPath(name).suffix.lower() or "(none)"][kind] += 1
    totals = Counter(outcome.values())
    columns = ["ingested", *REASONS]
    with capsys.disabled():
        print()
        print(table("mixed-docs outcomes per extension", dict(sorted(by_ext.items())), columns))
        print(f"all: {dict(totals)} in {summary.seconds:.0f} s, {summary.chunks:,} chunks")
        for name, reason in sorted(reasons.items()):
            print(f"  {name}: {reason}")

    assert set(names) <= set(outcome), sorted(set(names) - set(outcome))[:5]
    assert summary.ingested == totals["ingested"] and summary.failed + summary.skipped == len(
        reasons
    )
    for name, expected in EXPECTED.items():
        assert outcome[name] == expected, (name, reasons.get(name))
    assert totals["ingested"] >= 200, totals
    assert svc.check_index("mixed").ok

    # words known to be in images and scans, found by search in those files' OCR'd chunks
    for name, word in KNOWN_WORDS.items():
        uri = (folder / name).as_uri()
        hits = svc.search(
            "mixed", word, principals=["user:alice"], mode="bm25", filters=Filters(uri_prefix=uri)
        ).hits
        assert hits and all(h.uri == uri and h.ocr for h in hits), (name, word, hits[:1])
        assert word.lower() in hits[0].text.lower(), (name, hits[0].text[:200])
    assert len({PurePosixPath(n).suffix for n in KNOWN_WORDS}) >= 5  # across formats
