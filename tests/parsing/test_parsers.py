"""Parsing of every format we claim, offline, with clear errors for what we cannot read."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from ragstack.errors import ParseError, UnsupportedDocumentError
from ragstack.ingest.parsing import DocumentParser

PARSER = DocumentParser()


def parse(data: bytes, name: str, mime: str | None = None) -> tuple[str, list[str]]:
    title, blocks = PARSER.parse(data, filename=name, mime=mime)
    return title, [b.text for b in blocks]


def test_markdown_sections() -> None:
    title, blocks = PARSER.parse(
        b"# Guide\n\nIntro.\n\n## Setup\nInstall it.\n", filename="g.md", mime=None
    )
    assert title == "Guide"
    assert [(b.text, b.section) for b in blocks] == [
        ("Intro.", ("Guide",)),
        ("Install it.", ("Guide", "Setup")),
    ]


def test_html_offline() -> None:
    html = b"<html><body><h1>Policy</h1><p>Laptops lock after five minutes.</p></body></html>"
    _title, texts = parse(html, "p.html", "text/html")
    assert "Laptops lock after five minutes." in texts


def test_docx_offline() -> None:
    import docx  # python-docx, installed by unstructured[docx]

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew by twelve percent in the third quarter.")
    buf = io.BytesIO()
    document.save(buf)
    _title, blocks = PARSER.parse(buf.getvalue(), filename="r.docx", mime=None)
    assert any("Revenue grew" in b.text for b in blocks)
    assert any(b.section == ("Quarterly report",) for b in blocks)


def test_pdf_pages_and_errors() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ParseError, match="empty"):
        PARSER.parse(buf.getvalue(), filename="blank.pdf", mime="application/pdf")
    writer.encrypt("secret")
    enc = io.BytesIO()
    writer.write(enc)
    with pytest.raises(ParseError, match="password-protected"):
        PARSER.parse(enc.getvalue(), filename="locked.pdf", mime="application/pdf")
    with pytest.raises(ParseError, match="corrupt"):
        PARSER.parse(b"%PDF-1.4 garbage", filename="bad.pdf", mime="application/pdf")


def test_unsupported_kinds() -> None:
    with pytest.raises(UnsupportedDocumentError, match="audio"):
        PARSER.parse(b"RIFF....WAVE", filename="a.wav", mime="audio/x-wav")
    with pytest.raises(UnsupportedDocumentError, match="image"):
        PARSER.parse(b"\x89PNG", filename="a.png", mime="image/png")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.txt", "hello")
    with pytest.raises(UnsupportedDocumentError, match="archives"):
        PARSER.parse(buf.getvalue(), filename="a.zip", mime="application/zip")


@pytest.mark.slow
def test_every_mixed_doc_is_parsed_or_explained(shared_data: Path) -> None:
    folder = shared_data / "mixed-docs"
    outcomes: dict[str, str] = {}
    from connectors import FilesystemConnector, ScanError

    for item in FilesystemConnector(folder).scan():
        if isinstance(item, ScanError):
            outcomes[item.uri] = f"scan:{item.kind}"
            continue
        try:
            _title, blocks = PARSER.parse(
                item.read(), filename=item.uri.rsplit("/", 1)[-1], mime=item.mime
            )
            assert any(b.text.strip() for b in blocks)
            outcomes[item.uri] = "parsed"
        except (ParseError, UnsupportedDocumentError) as exc:
            reason = str(exc)
            assert reason.split(":", 1)[0] in (
                "corrupt",
                "password-protected",
                "empty",
                "unsupported",
            ), reason
            outcomes[item.uri] = reason.split(":", 1)[0]
    parsed = sum(v == "parsed" for v in outcomes.values())
    assert len(outcomes) >= 200
    assert parsed >= 0.6 * len(outcomes), outcomes
