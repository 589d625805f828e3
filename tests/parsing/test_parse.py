"""parse(): structure, spans, encodings, and a clear typed error for each kind of bad input."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from email.message import EmailMessage

import pytest

from ragstack.errors import DocumentTooLargeError, ParseError, UnsupportedDocumentError
from ragstack.parsing import ParsedDocument, decode_text, parse
from ragstack.parsing.ocr import OcrSettings


def text_pdf(pages: list[str]) -> bytes:
    """A small valid PDF with one line of Helvetica text per page (offsets computed)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        content_id = len(objects) + 1
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        page_id = len(objects) + 1
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
            b">> >> >> >>" % content_id
        )
        kids.append(b"%d 0 R" % page_id)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (i, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref))  # fmt: skip
    return out.getvalue()


def assert_spans(doc: ParsedDocument) -> None:
    assert doc.elements
    for el in doc.elements:
        assert doc.text[el.start : el.end] == el.text


def test_markdown_sections_kinds_and_spans() -> None:
    md = (
        "# Guide\n\nIntro paragraph.\n\n## Setup\n\nInstall it:\n\n- step one\n- step two\n\n"
        "```\npip install ragstack\n```\n\nUsage\n-----\n\nRun it.\n"
    )
    doc = parse(md.encode(), filename="g.md", mime=None)
    assert doc.format == "markdown" and doc.title == "Guide"
    assert [(e.kind, e.text, e.section) for e in doc.elements] == [
        ("title", "Guide", ("Guide",)),
        ("paragraph", "Intro paragraph.", ("Guide",)),
        ("title", "Setup", ("Guide", "Setup")),
        ("paragraph", "Install it:", ("Guide", "Setup")),
        ("list_item", "- step one\n- step two", ("Guide", "Setup")),
        ("code", "pip install ragstack", ("Guide", "Setup")),
        ("title", "Usage", ("Guide", "Usage")),
        ("paragraph", "Run it.", ("Guide", "Usage")),
    ]
    assert_spans(doc)


def test_html_headings_give_sections() -> None:
    html = (
        b"<html><head><meta charset='windows-1252'></head><body><h1>Policy</h1>"
        b"<p>Laptops lock after five minutes of inactivity, always.</p><h2>Caf\xe9s</h2>"
        b"<ul><li>Use the VPN on public networks.</li></ul></body></html>"
    )
    doc = parse(html, filename="p.html", mime="text/html")
    by_text = {e.text: e for e in doc.elements}
    assert by_text["Laptops lock after five minutes of inactivity, always."].section == ("Policy",)
    item = by_text["Use the VPN on public networks."]
    assert item.kind == "list_item" and item.section == ("Policy", "Cafés")
    assert_spans(doc)


def test_docx_headings_tables_and_pages() -> None:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew by twelve percent in the third quarter of the year.")
    document.add_heading("Costs", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "item", "amount"
    table.cell(1, 0).text, table.cell(1, 1).text = "travel", "1200"
    buf = io.BytesIO()
    document.save(buf)
    doc = parse(buf.getvalue(), filename="r.docx", mime=None)
    assert doc.title == "Quarterly report"
    revenue = next(e for e in doc.elements if e.text.startswith("Revenue"))
    assert revenue.section == ("Quarterly report",)
    tables = [e for e in doc.elements if e.kind == "table"]
    assert tables and "travel" in tables[0].text
    assert tables[0].section == ("Quarterly report", "Costs")
    assert_spans(doc)


def test_xlsx_and_csv_tables() -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["team", "cups"])
    sheet.append(["Canadiens", 24])
    buf = io.BytesIO()
    book.save(buf)
    doc = parse(buf.getvalue(), filename="cups.xlsx", mime=None)
    assert any(e.kind == "table" and "Canadiens" in e.text for e in doc.elements)
    doc = parse("team,cups\nCanadiens,24\n".encode("utf-16"), filename="c.csv", mime=None)
    assert "Canadiens" in doc.text
    ragged = parse(b"a,b\n1,2,3\n4\n", filename="r.csv", mime="text/csv")
    assert "1,2,3" in ragged.text


def test_pdf_text_and_pages() -> None:
    doc = parse(
        text_pdf(["Hello from page one.", "And this is page two."]),
        filename="two.pdf",
        mime="application/pdf",
    )
    assert doc.pages == 2
    assert [(e.text, e.page) for e in doc.elements] == [
        ("Hello from page one.", 1),
        ("And this is page two.", 2),
    ]
    assert_spans(doc)


def test_email_subject_body_and_no_attachment_processing() -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.org", "b@x.org", "Quarterly numbers"
    message.set_content("Hi Bob,\n\nthe numbers are attached and look good this quarter.\n")
    message.add_attachment(b"\x89PNG\r\n\x1a\n...", maintype="image", subtype="png")
    doc = parse(message.as_bytes(), filename="m.eml", mime="message/rfc822")
    assert doc.title == "Quarterly numbers"
    assert "the numbers are attached" in doc.text


def test_encrypted_email() -> None:
    raw = (
        b"From: a@x.org\nSubject: secret\nMIME-Version: 1.0\nContent-Type: multipart/encrypted; "
        b'protocol="application/pgp-encrypted"; boundary=foo\n\n--foo\nContent-Type: '
        b"application/pgp-encrypted\n\nVersion: 1\n\n--foo\nContent-Type: application/octet-"
        b"stream\n\n-----BEGIN PGP MESSAGE-----\nhIwDY32h\n-----END PGP MESSAGE-----\n--foo--\n"
    )
    with pytest.raises(ParseError, match=r"^password-protected:"):
        parse(raw, filename="s.eml", mime=None)


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16-le", False), ("utf-16-be", False), ("utf-16", True), ("utf-32", True),
     ("cp1252", False), ("utf-8-sig", True)],
)  # fmt: skip
def test_text_encodings(encoding: str, bom: bool) -> None:
    text = "Crème brûlée costs 5 € in Zürich.\n\nSecond paragraph."
    data = text.encode(encoding)
    assert data.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")) == bom
    doc = parse(data, filename="menu.txt", mime="text/plain")
    assert doc.text == text.replace("\n\n", "\n\n")
    assert decode_text(data) == text


def test_empty_inputs() -> None:
    for data, name in [(b"", "e.txt"), (b"  \n\t\n", "w.txt"), (b"\xef\xbb\xbf \n", "h.md")]:
        with pytest.raises(ParseError, match=r"^empty:"):
            parse(data, filename=name, mime=None)
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ParseError, match=r"^empty:.*OCR.*off"):
        parse(buf.getvalue(), filename="blank.pdf", mime=None, ocr=OcrSettings(mode="off"))


def test_password_protected_pdf() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(text_pdf(["Top secret plans."]))))
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ParseError, match=r"^password-protected:"):
        parse(buf.getvalue(), filename="locked.pdf", mime=None)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.4 garbage", "bad.pdf"),
        (b"PK\x03\x04 not really a zip", "bad.docx"),
        (b"not a spreadsheet at all", "bad.xlsx"),
        (b"\x00\x01\x02\x03\xff\xfe\x00\x00binary", "blob.txt"),
    ],
)
def test_corrupt_inputs(data: bytes, name: str) -> None:
    with pytest.raises(ParseError, match=r"^corrupt:"):
        parse(data, filename=name, mime=None)


def test_unsupported_inputs() -> None:
    cases = [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "a.wav", "audio/x-wav", "speech recognition"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "drawing.svg", None, "OCR reads PNG"),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.txt", "hello")
    cases.append((buf.getvalue(), "a.zip", None, "archives"))
    for data, name, mime, reason in cases:
        with pytest.raises(UnsupportedDocumentError, match=f"^unsupported:.*{reason}"):
            parse(data, filename=name, mime=mime)


@pytest.mark.skipif(shutil.which("soffice") is not None, reason="LibreOffice is installed")
def test_legacy_office_needs_libreoffice() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    with pytest.raises(UnsupportedDocumentError, match="LibreOffice"):
        parse(ole, filename="old.doc", mime=None)


def test_size_limit() -> None:
    with pytest.raises(DocumentTooLargeError, match=r"^too large:"):
        parse(b"x" * 101, filename="big.txt", mime=None, max_bytes=100)


def test_importing_parsing_is_light() -> None:
    code = (
        "import sys, ragstack, ragstack.parsing, ragstack.redaction\n"
        "heavy = [m for m in ('unstructured', 'spacy', 'torch', 'pypdf') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parsing_never_touches_the_network(tmp_path: object) -> None:
    """Every unstructured-backed format parses in a process whose sockets all fail."""
    code = r"""
import io, socket, sys
def deny(*args, **kwargs):
    raise OSError("network access attempted during parsing")
socket.socket.connect = deny
socket.create_connection = deny
socket.getaddrinfo = deny
import docx
from ragstack.parsing import parse
from ragstack.parsing.offline import HeuristicsPipeline
d = docx.Document(); d.add_heading("Title here", 1); d.add_paragraph("A sentence. Another one.")
d.add_paragraph("Short line"); buf = io.BytesIO(); d.save(buf)
parse(buf.getvalue(), filename="x.docx", mime=None)
parse(b"<h1>T</h1><p>Some words here. More words there.</p><p>One</p>", filename="x.html",
      mime=None)
parse(b"Subject: s\n\nHello there. This is the body.\n", filename="x.eml", mime=None)
parse(b"col\nvalue\n", filename="x.csv", mime=None)
parse(b"<r><a>text one</a><b>text two</b></r>", filename="x.xml", mime=None)
import unstructured.nlp.tokenize as t
assert isinstance(t._get_nlp(), HeuristicsPipeline), type(t._get_nlp())
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip().endswith("ok")
