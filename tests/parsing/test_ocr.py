"""OCR with the real Tesseract: image files, scanned and half-scanned PDFs, turned pages,
tables in scans, pictures in DOCX files, and the limits (missing engine or language, huge
images, time-outs).

Tesseract comes from Debian (scripts/setup.sh installs it). Without it these tests skip, except
in CI (``CI`` set), where its absence fails them.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from evals.pdf_render import render, scan_of, table_pdf, table_rows
from ragstack.errors import DocumentTooLargeError, ParseError, UnsupportedDocumentError
from ragstack.parsing import DocumentParser, parse
from ragstack.parsing.ocr import OcrSettings
from ragstack.parsing.tables import markdown_table

TITLE = "Seasonal influenza vaccination in care homes"
TEXT = (
    "Residents of care homes who received the seasonal vaccine had fewer hospital admissions "
    "during the winter. Staff vaccination lowered outbreaks further. Antiviral prophylaxis was "
    "given to contacts within two days of the first confirmed case."
)


pytestmark = pytest.mark.usefixtures("tesseract")  # tests/conftest.py: real Tesseract


def words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()}


def page_png(pdf: bytes, dpi: int = 200, turn: int = 0) -> bytes:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    image = doc[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    doc.close()
    if turn:
        image = image.rotate(turn, expand=True)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_image_file_is_read() -> None:
    png = page_png(render("single", TITLE, TEXT, random.Random(1)))
    doc = parse(png, filename="scan.png", mime=None)
    assert doc.format == "image" and doc.ocr_pages == 1 and doc.ocr_inputs == 1
    assert all(e.ocr for e in doc.elements)
    assert len(words(TEXT) - words(doc.text)) <= 2  # OCR of a clean page: next to every word


def test_turned_page_is_read_upright() -> None:
    png = page_png(render("single", TITLE, TEXT, random.Random(1)), turn=90)
    doc = parse(png, filename="sideways.png", mime=None)
    assert len(words(TEXT) - words(doc.text)) <= 3


def test_half_scanned_pdf_keeps_every_page() -> None:
    """Page 1 has a text layer, page 2 is an image: both are read, each with its page."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(render("single", "Part one", TEXT, random.Random(1)))))
    scan = scan_of(
        render("single", "Part two", "Oseltamivir shortened the outbreak.", random.Random(2)),
        random.Random(0),
        turn_share=0,
    )
    writer.append(PdfReader(io.BytesIO(scan)))
    buf = io.BytesIO()
    writer.write(buf)
    doc = parse(buf.getvalue(), filename="mixed.pdf", mime=None)
    assert doc.pages == 2 and doc.ocr_pages == 1
    first = [e for e in doc.elements if e.page == 1]
    second = [e for e in doc.elements if e.page == 2]
    assert first and not any(e.ocr for e in first)
    assert second and all(e.ocr for e in second)
    assert "Oseltamivir" in " ".join(e.text for e in second)

    off = parse(buf.getvalue(), filename="mixed.pdf", mime=None, ocr=OcrSettings(mode="off"))
    assert off.ocr_pages == 0 and off.ocr_inputs == 1  # OCR could change it: it says so
    assert "Oseltamivir" not in off.text


def test_always_reads_text_pages_by_ocr_too() -> None:
    pdf = render("single", TITLE, TEXT, random.Random(1))
    doc = parse(pdf, filename="p.pdf", mime=None, ocr=OcrSettings(mode="always"))
    assert doc.ocr_pages == 1 and all(e.ocr for e in doc.elements)


def test_scanned_table_is_read_as_a_table() -> None:
    rows = table_rows(random.Random(6), 4, 3)
    scan = scan_of(table_pdf(rows, "Staffing"), random.Random(0), dpi=300, turn_share=0)
    doc = parse(scan, filename="table-scan.pdf", mime=None)
    tables = [e for e in doc.elements if e.kind == "table"]
    assert len(tables) == 1 and tables[0].ocr
    assert tables[0].text.split("\n")[0] == markdown_table(rows).split("\n")[0]  # the header
    assert sum(row[0] in tables[0].text for row in rows[1:]) >= 3


def test_pictures_in_docx_are_read() -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("The figure below shows the rota.")
    d.add_picture(io.BytesIO(page_png(render("single", TITLE, TEXT, random.Random(1)))))
    buf = io.BytesIO()
    d.save(buf)
    doc = parse(buf.getvalue(), filename="rota.docx", mime=None)
    assert doc.ocr_inputs == 1 and doc.ocr_pages == 1
    assert any(e.ocr and "vaccine" in e.text for e in doc.elements)
    assert not parse(
        buf.getvalue(), filename="rota.docx", mime=None, ocr=OcrSettings(mode="off")
    ).ocr_pages


def test_ocr_off_refuses_images_and_scans_saying_how() -> None:
    off = OcrSettings(mode="off")
    png = page_png(render("single", TITLE, TEXT, random.Random(1)))
    with pytest.raises(ParseError, match=r"^unsupported:.*OCR.*off"):
        parse(png, filename="scan.png", mime=None, ocr=off)
    scan = scan_of(render("single", TITLE, TEXT, random.Random(1)), random.Random(0))
    with pytest.raises(ParseError, match=r"^empty:.*OCR.*off"):
        parse(scan, filename="scan.pdf", mime=None, ocr=off)


def test_image_without_text_has_its_own_reason() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (30, 120, 200)).save(buf, format="PNG")
    with pytest.raises(ParseError, match=r"^no-text:"):
        parse(buf.getvalue(), filename="sky.png", mime=None)


def test_decompression_bombs_and_junk_images_are_refused() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (3000, 2000), 255).save(buf, format="PNG")
    with pytest.raises(DocumentTooLargeError, match=r"^too large:.*pixels"):
        parse(
            buf.getvalue(),
            filename="huge.png",
            mime=None,
            ocr=OcrSettings(max_pixels=5_000_000),
        )
    with pytest.raises(ParseError, match=r"^corrupt:"):
        parse(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, filename="cut.png", mime=None)
    with pytest.raises(UnsupportedDocumentError, match="OCR reads PNG"):
        parse(b"<svg xmlns='http://www.w3.org/2000/svg'/>", filename="a.svg", mime=None)


def test_ocr_gives_up_after_its_time_limit() -> None:
    png = page_png(render("single", TITLE, TEXT * 4, random.Random(1)), dpi=300)
    with pytest.raises(ParseError, match=r"gave up after"):
        parse(png, filename="slow.png", mime=None, ocr=OcrSettings(timeout_s=0.05))


def test_text_in_a_script_no_language_reads(shared_data: Path) -> None:
    image = shared_data / "mixed-docs" / "img" / "chi_sim_image.jpeg"
    with pytest.raises(ParseError, match=r"^ocr-language-missing:.*Han.*chi_sim"):
        parse(image.read_bytes(), filename=image.name, mime=None)


def test_missing_language_pack_is_named() -> None:
    png = page_png(render("single", TITLE, TEXT, random.Random(1)))
    with pytest.raises(ParseError, match=r"^ocr-unavailable:.*tesseract-ocr-zzz"):
        parse(png, filename="scan.png", mime=None, ocr=OcrSettings(languages="eng+zzz"))


def test_missing_tesseract_says_how_to_install(tmp_path: Path) -> None:
    """A process whose PATH has no tesseract: images are refused with the install line, and
    the parser's tag for OCR-dependent documents says the engine is missing."""
    png = tmp_path / "scan.png"
    png.write_bytes(page_png(render("single", TITLE, TEXT, random.Random(1))))
    code = (
        "import sys\n"
        "from ragstack.errors import ParseError\n"
        "from ragstack.parsing import DocumentParser\n"
        "p = DocumentParser()\n"
        "print(p.ocr.engine)\n"
        "try:\n"
        f"    p.parse(open({str(png)!r}, 'rb').read(), filename='scan.png', mime=None)\n"
        "except ParseError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("missing\nocr-unavailable:")
    assert "apt-get install tesseract-ocr" in out


def test_tags_separate_documents_ocr_can_change() -> None:
    auto, off = DocumentParser(), DocumentParser().with_ocr_mode("off")
    assert auto.tag(False) == off.tag(False)  # no images: OCR settings do not matter
    assert auto.tag(True) != off.tag(True)
    assert auto.tag(True) != DocumentParser(ocr=OcrSettings(languages="eng+osd")).tag(True)
