"""Documents drawn as PDFs for ``evals.bench_pdf`` and the tests: text in several layouts, and
tables (ruled PDF tables, scanned tables, DOCX and XLSX tables) with known cells.

Layouts of one text (a title and its body):

- ``single``: one column, letter size.
- ``columns``: two columns, every line drawn in a random order (the file's text order is not
  the reading order).
- ``furniture``: a small page, so a text spans pages, with a running header, a footer
  ``Page i of n`` and a bare page number.
- ``scan``: the ``single`` pages as greyscale JPEG images at 200 dpi, no text layer (some
  turned by 90, 180 or 270 degrees), for OCR.

Rendering uses reportlab (the ``dev`` extra) and, for scans, PDFium and Pillow.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUTS = ("single", "columns", "furniture", "scan")
HEADER = "Journal of Claims Research - Vol. 12 - Reprint"


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and stringWidth(trial, font, size) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


def _single(title: str, text: str) -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=True)
    c.setTitle("")
    width, height = letter
    y = height - 72
    for line in _wrap(title, "Helvetica-Bold", 14, width - 144):
        c.setFont("Helvetica-Bold", 14)
        c.drawString(72, y, line)
        y -= 18
    y -= 8
    for line in _wrap(text, "Helvetica", 10.5, width - 144):
        if y < 72:
            c.showPage()
            y = height - 72
        c.setFont("Helvetica", 10.5)
        c.drawString(72, y, line)
        y -= 13.5
    c.save()
    return buf.getvalue()


def _columns(title: str, text: str, rng: random.Random) -> bytes:
    """Two columns; the lines of each page drawn in a shuffled order."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=True)
    width, height = letter
    col_w, gutter = (width - 144 - 24) / 2, 24
    draws: list[tuple[str, float, float, str, float]] = []
    y = height - 72
    for line in _wrap(title, "Helvetica-Bold", 14, width - 144):
        draws.append((line, 72, y, "Helvetica-Bold", 14))
        y -= 18
    top = y - 10
    col, y = 0, top
    for line in _wrap(text, "Helvetica", 10, col_w):
        if y < 72:
            if col == 0:
                col, y = 1, top
            else:
                rng.shuffle(draws)
                for t, x, yy, f, s in draws:
                    c.setFont(f, s)
                    c.drawString(x, yy, t)
                c.showPage()
                draws, col, top = [], 0, height - 72
                y = top
        draws.append((line, 72 + col * (col_w + gutter), y, "Helvetica", 10))
        y -= 12.5
    rng.shuffle(draws)
    for t, x, yy, f, s in draws:
        c.setFont(f, s)
        c.drawString(x, yy, t)
    c.save()
    return buf.getvalue()


def _furniture(title: str, text: str) -> bytes:
    """A small page (A6), so texts span pages; running header, footer and page number."""
    from reportlab.lib.pagesizes import A6
    from reportlab.pdfgen import canvas

    width, height = A6
    margin = 36
    lines: list[tuple[str, float, str]] = [
        ("Helvetica-Bold", 12, t) for t in _wrap(title, "Helvetica-Bold", 12, width - 72)
    ]
    lines += [("Helvetica", 9.5, t) for t in _wrap(text, "Helvetica", 9.5, width - 72)]
    per_page = int((height - 2 * margin - 30) // 12)
    pages = [lines[i : i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A6, invariant=True)
    for n, page in enumerate(pages, 1):
        c.setFont("Helvetica-Oblique", 7.5)
        c.drawString(margin, height - 24, HEADER)
        c.line(margin, height - 28, width - margin, height - 28)
        y = height - margin - 12
        for font, size, t in page:
            c.setFont(font, size)
            c.drawString(margin, y, t)
            y -= 12 if size < 12 else 16
        c.setFont("Helvetica", 7.5)
        c.drawString(margin, 20, f"Page {n} of {len(pages)}")
        c.drawCentredString(width / 2, 10, str(n))
        c.showPage()
    c.save()
    return buf.getvalue()


def scan_of(pdf: bytes, rng: random.Random, dpi: int = 200, turn_share: float = 0.1) -> bytes:
    """The PDF's pages as greyscale JPEG images only (no text layer), some turned."""
    import pypdfium2 as pdfium
    from PIL import Image

    doc = pdfium.PdfDocument(pdf)
    images: list[Any] = []
    try:
        for page in doc:
            image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            if rng.random() < turn_share:
                image = image.rotate(rng.choice([90, 180, 270]), expand=True)
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=75)
            images.append(Image.open(io.BytesIO(buf.getvalue())))
    finally:
        doc.close()
    out = io.BytesIO()
    images[0].save(out, format="PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out.getvalue()


def render(layout: str, title: str, text: str, rng: random.Random) -> bytes:
    """One text as a PDF in ``layout`` (one of ``LAYOUTS``)."""
    if layout == "single":
        return _single(title, text)
    if layout == "columns":
        return _columns(title, text, rng)
    if layout == "furniture":
        return _furniture(title, text)
    if layout == "scan":
        return scan_of(_single(title, text), rng)
    raise ValueError(f"unknown layout {layout!r}")


# -- tables with known cells ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A labelled cell: found when a chunk holds ``value`` on one line with ``row`` (the row's
    first cell) and the chunk (with its context) holds ``column`` (the column's header)."""

    row: str
    column: str
    value: str


_REGIONS = ["North", "South", "East", "West", "Central", "Coastal", "Highland", "Metro"]
_MEASURES = ["Revenue", "Costs", "Margin", "Headcount", "Tickets", "Churn", "Backlog"]


def table_rows(rng: random.Random, rows: int, cols: int) -> list[list[str]]:
    """A header and ``rows`` rows: distinct row keys, numbers in the other columns."""
    measures = rng.sample(_MEASURES, cols - 1)
    header = ["Region", *measures]
    body = [
        [f"{rng.choice(_REGIONS)} {i + 1:02d}", *(f"{rng.randint(100, 99999):,}" for _ in measures)]
        for i in range(rows)
    ]
    return [header, *body]


def labels_of(rows: Sequence[Sequence[str]]) -> list[Cell]:
    header = rows[0]
    return [Cell(r[0], header[j], r[j]) for r in rows[1:] for j in range(1, len(header))]


def table_pdf(rows: Sequence[Sequence[str]], title: str) -> bytes:
    """A ruled table (reportlab's ``Table`` with a grid) under a heading, across pages."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=letter, invariant=True, title="")
    table = Table([list(r) for r in rows], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.8, 0.87, 0.95)),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ]
        )
    )
    styles = getSampleStyleSheet()
    doc.build([Paragraph(title, styles["Heading2"]), table])
    return buf.getvalue()


def table_docx(rows: Sequence[Sequence[str]], title: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(title, 2)
    t = d.add_table(rows=len(rows), cols=len(rows[0]))
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            t.cell(i, j).text = value
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def table_xlsx(rows: Sequence[Sequence[str]]) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_tables(out: Path, rng: random.Random, count: int) -> dict[str, list[Cell]]:
    """``count`` generated tables per kind (PDF, scanned PDF, DOCX, XLSX) in ``out``, with
    their labelled cells by file name. Every fourth PDF table is long (spans chunks)."""
    out.mkdir(parents=True, exist_ok=True)
    labels: dict[str, list[Cell]] = {}
    for i in range(count):
        long = i % 4 == 3
        rows = table_rows(rng, 60 if long else rng.randint(3, 8), rng.randint(3, 5))
        cells = labels_of(rows)
        title = f"Quarterly figures {i + 1}"
        (out / f"gen-{i:02d}.pdf").write_bytes(table_pdf(rows, title))
        labels[f"gen-{i:02d}.pdf"] = cells
        if not long:
            (out / f"gen-{i:02d}-scan.pdf").write_bytes(
                scan_of(table_pdf(rows, title), rng, 300, 0)
            )
            labels[f"gen-{i:02d}-scan.pdf"] = cells
        (out / f"gen-{i:02d}.docx").write_bytes(table_docx(rows, title))
        labels[f"gen-{i:02d}.docx"] = cells
        (out / f"gen-{i:02d}.xlsx").write_bytes(table_xlsx(rows))
        labels[f"gen-{i:02d}.xlsx"] = cells
    return labels
