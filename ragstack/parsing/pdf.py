"""PDFs: text in reading order through PDFium, ruled tables through pdfplumber, pages without
a usable text layer (and large pictures) through OCR.

Per page, PDFium reports every glyph with its box; ``ragstack.parsing.layout`` turns them into
lines, columns and paragraphs in reading order (whatever order the file draws them in), and
drops running headers, footers and bare page numbers. Pages that draw lines or rectangles are
given to pdfplumber, whose ruled tables become Markdown tables placed where they stand on the
page (their text is not repeated as paragraphs). A page with (almost) no text, or whose text
is mostly unmapped glyphs, is a scan: with OCR on it is rendered and read by Tesseract, and so
are large pictures on text pages (``auto``) or every page (``always``).

PDFium is not thread-safe: every call into it holds ``_PDFIUM``; OCR runs outside it, pages
in parallel, each page rendered when its worker starts (a 400-page scan is never held in
memory at once).
"""

from __future__ import annotations

import ctypes
import io
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragstack.errors import DocumentTooLargeError, ParseError
from ragstack.parsing.layout import (
    Glyph,
    Line,
    Region,
    furniture,
    is_page_number,
    join_lines,
    lines,
    paragraphs,
    reading_order,
)
from ragstack.parsing.model import Block
from ragstack.parsing.ocr import Ocr, OcrText
from ragstack.parsing.tables import markdown_table

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)
_PDFIUM = threading.Lock()
_MIN_TEXT = 10  # fewer letters and digits than this: the page has no usable text layer
_PICTURE_SHARE = 0.04  # pictures covering less of a text page are not read (logos, icons)
_MAX_PICTURES = 40  # per document, read on text pages
MAX_PAGES = 10_000  # a small file can declare any number of pages
Box4 = tuple[float, float, float, float]  # x0, top, x1, bottom


@dataclass
class PdfPage:
    number: int
    width: float
    height: float
    lines: list[Line]
    scanned: bool  # no usable text layer
    pictures: list[tuple[float, float, float, float]] = field(default_factory=list)
    ruled: bool = False  # draws enough lines/rectangles to hold a ruled table
    tables: list[Region] = field(default_factory=list)


@dataclass
class PdfResult:
    blocks: list[Block]
    title: str
    pages: int
    ocr_inputs: int  # scanned pages and pictures that OCR reads (or would, were it on)
    ocr_pages: int = 0
    ocr_seconds: float = 0.0


def _open(data: bytes, filename: str) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseError(f"password-protected: {filename} needs a password to open") from exc
        raise ParseError(f"corrupt: {filename} is not a readable PDF ({exc})") from exc


def _glyphs(textpage: Any, left: float, top: float) -> tuple[list[Glyph], int]:
    """Every drawn character of a page (top-down coordinates), and how many had no Unicode."""
    import pypdfium2.raw as c

    raw = textpage.raw
    rect = c.FS_RECTF()
    ref = ctypes.byref(rect)
    out: list[Glyph] = []
    space = False
    unmapped = 0
    n = c.FPDFText_CountChars(raw)
    units = (ctypes.c_ushort * (n + 1))()
    c.FPDFText_GetText(raw, 0, n, units)  # every character's code in one call
    pending_high = 0
    box, font_size, angle_of, map_error = (
        c.FPDFText_GetLooseCharBox,
        c.FPDFText_GetFontSize,
        c.FPDFText_GetCharAngle,
        c.FPDFText_HasUnicodeMapError,
    )
    for i in range(n):
        code = units[i]
        if code in (0x20, 0x0A, 0x0D, 0x09, 0xA0):  # PDFium's generated chars are these too
            space = True
            continue
        if 0xD800 <= code <= 0xDBFF:
            pending_high = code
            continue
        if 0xDC00 <= code <= 0xDFFF and pending_high:
            code = 0x10000 + ((pending_high - 0xD800) << 10) + (code - 0xDC00)
        pending_high = 0
        # unmapped glyphs (fonts without Unicode): every fourth is asked, a font is all or none
        unmapped_glyph = code == 0xFFFD or (i % 4 == 0 and map_error(raw, i) == 1)
        if (unmapped_glyph or code < 0x20) and code != 0x02:  # 2: PDFium's line-end hyphen
            unmapped += 4 if code != 0xFFFD else 1
            continue
        angle = angle_of(raw, i)
        if 0.05 < angle < 6.23:  # vertical or slanted text (margins of preprints): not read
            continue
        if not box(raw, i, ref):
            continue
        size = float(font_size(raw, i))
        out.append(
            Glyph(
                chr(code),
                rect.left - left,
                top - rect.top,
                rect.right - left,
                top - rect.bottom,
                size,
                space,
            )
        )
        space = False
    return out, unmapped


def _objects(page: Any, top: float) -> tuple[bool, list[Box4]]:
    """(whether the page draws the rules of a table, boxes of its images), top-down."""
    import pypdfium2.raw as c

    across = down = 0
    images: list[Box4] = []
    for obj in page.get_objects(max_depth=3):
        if obj.type == c.FPDF_PAGEOBJ_PATH:
            left, bottom, right, up = obj.get_bounds()
            wide, tall = right - left, up - bottom
            across += wide > 10 and (tall <= 3 or tall > 10)  # a rule, or a cell's box
            down += tall > 10 and (wide <= 3 or wide > 10)
        elif obj.type == c.FPDF_PAGEOBJ_IMAGE:
            left, bottom, right, up = obj.get_bounds()
            images.append((left, top - up, right, top - bottom))
    return across >= 3 and down >= 3, images


def _scan_page(doc: Any, index: int) -> PdfPage:
    page = doc[index]
    try:
        left, bottom, right, top = page.get_cropbox()
        width, height = right - left, top - bottom
        textpage = page.get_textpage()
        try:
            glyphs, unmapped = _glyphs(textpage, left, top)
        finally:
            textpage.close()
        ruled, images = _objects(page, top)
    finally:
        page.close()
    letters = sum(g.char.isalnum() for g in glyphs)
    area = max(width * height, 1.0)
    pictures = [
        (x0 - left, y0, x1 - left, y1)
        for x0, y0, x1, y1 in images
        if (x1 - x0) * (y1 - y0) >= _PICTURE_SHARE * area and x1 - x0 >= 72 and y1 - y0 >= 28
    ]
    covered = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in pictures) / area
    scanned = letters < _MIN_TEXT or unmapped > letters or (covered >= 0.5 and letters < 200)
    return PdfPage(
        index + 1,
        width,
        height,
        [] if scanned else lines(glyphs),
        scanned,
        [] if scanned or covered >= 0.6 else pictures,
        ruled=ruled and not scanned,
    )


def _scan_page_safely(doc: Any, index: int, filename: str) -> PdfPage:
    """``_scan_page``; a page PDFium cannot read is left to OCR (its rendering may still
    work), so one damaged page does not lose the others."""
    try:
        return _scan_page(doc, index)
    except Exception as exc:  # PDFium reports damage through many types
        log.warning("%s: page %d has no readable text layer (%s)", filename, index + 1, exc)
        return PdfPage(index + 1, 0.0, 0.0, [], scanned=True)


def _find_tables(data: bytes, pages: list[PdfPage], filename: str) -> None:
    """Ruled tables of the pages that draw lines, through pdfplumber (when installed)."""
    todo = [p for p in pages if p.ruled]
    if not todo:
        return
    try:
        import pdfplumber
    except ImportError:
        log.warning(
            "%s: tables are read as text: pip install 'ragstack[pdf]' for pdfplumber", filename
        )
        return
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for page in todo:
                found = pdf.pages[page.number - 1].find_tables()
                for table in found:
                    text = markdown_table(table.extract())
                    if text.count("\n") >= 2 and "|" in text:  # header, rule, one row at least
                        x0, top, x1, bottom = table.bbox
                        page.tables.append(Region(x0, top, x1, bottom, text))
    except Exception as exc:  # pdfminer raises anything on odd files: keep the text
        log.warning("%s: tables not extracted (%s: %s)", filename, type(exc).__name__, exc)


def _inside(line: Line, region: Region) -> bool:
    cx = (line.x0 + line.x1) / 2
    if not region.x0 - 2 <= cx <= region.x1 + 2:
        return False
    return region.top - 2 <= line.middle <= region.bottom + 2


def _page_blocks(page: PdfPage, dropped: set[int], body: float) -> list[Block]:
    kept: list[Line | Region] = [
        ln
        for ln in page.lines
        if id(ln) not in dropped and not any(_inside(ln, t) for t in page.tables)
    ]
    kept += page.tables
    blocks: list[Block] = []
    column: list[Line] = []

    def flush() -> None:
        for group in paragraphs(column):
            text = join_lines([ln.text for ln in group])
            size = Counter(ln.size for ln in group).most_common(1)[0][0]
            if size >= 1.2 * body and len(group) <= 6 and len(text.split()) <= 40:
                blocks.append(Block(text, "title", page.number, _depth(size, body)))
            else:
                blocks.append(Block(text, "paragraph", page.number))
        column.clear()

    for box in reading_order(kept):
        if isinstance(box, Region):
            flush()
            blocks.append(Block(str(box.payload), "table", page.number))
        else:
            if column and box.top < column[-1].top - 1:  # a new column: never one paragraph
                flush()
            column.append(box)
    flush()
    return blocks


def _depth(size: float, body: float) -> int:
    return 0 if size >= 1.6 * body else 1 if size >= 1.35 * body else 2


def _body_size(pages: list[PdfPage]) -> float:
    sizes: Counter[float] = Counter()
    for page in pages:
        for ln in page.lines:
            sizes[round(ln.size, 1)] += len(ln.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def _renderer(doc: Any, number: int, dpi: int, box: Box4 | None) -> Callable[[], Image]:
    def render() -> Image:
        with _PDFIUM:
            try:
                return _render(doc, number, dpi, box)
            except Exception as exc:  # PDFium reports damage through many types
                raise ParseError(f"corrupt: page {number} cannot be rendered ({exc})") from exc

    return render


def _render(doc: Any, number: int, dpi: int, box: Box4 | None) -> Image:
    """Page ``number`` (or the ``box`` of it) as a greyscale image at ``dpi`` (less for
    poster-sized pages)."""
    page = doc[number - 1]
    try:
        width, height = page.get_size()
        crop = (0.0, 0.0, 0.0, 0.0)
        if box is not None:
            x0, top, x1, bottom = box
            crop = (max(0.0, x0), max(0.0, height - bottom), max(0.0, width - x1), max(0.0, top))
        scale = dpi / 72
        pixels = (width - crop[0] - crop[2]) * (height - crop[1] - crop[3]) * scale * scale
        if pixels > 40_000_000:
            scale *= (40_000_000 / pixels) ** 0.5
        image: Image = page.render(scale=scale, crop=crop, grayscale=True).to_pil()
        return image.copy()
    finally:
        page.close()


def read_pdf(data: bytes, filename: str, ocr: Ocr) -> PdfResult:
    """The PDF's blocks in reading order, with OCR where the settings ask for it."""
    with _PDFIUM:
        doc = _open(data, filename)
    try:
        with _PDFIUM:
            try:
                count = len(doc)
                if count > MAX_PAGES:
                    raise DocumentTooLargeError(
                        f"too large: {filename} has {count:,} pages, over the limit of "
                        f"{MAX_PAGES:,}"
                    )
                pages = [_scan_page_safely(doc, i, filename) for i in range(count)]
                meta = doc.get_metadata_dict(skip_empty=True)
            except (ParseError, DocumentTooLargeError):
                raise
            except Exception as exc:  # PDFium reports damage through many types
                raise ParseError(f"corrupt: {filename} is not a readable PDF ({exc})") from exc
        _find_tables(data, pages, filename)
        title = str(meta.get("Title", "") or "").strip()
        if title.lower() in ("untitled", "untitled document") or title.startswith(
            ("Microsoft Word - ", "Microsoft PowerPoint - ")
        ):
            title = ""  # what writers put when there is no title
        return _assemble(doc, pages, title, filename, ocr)
    finally:
        with _PDFIUM:
            doc.close()


def _assemble(doc: Any, pages: list[PdfPage], title: str, filename: str, ocr: Ocr) -> PdfResult:
    mode = ocr.settings.mode
    body = _body_size(pages)
    dropped = furniture([(p.height, p.lines) for p in pages], body)
    per_page: dict[int, list[Block]] = {
        p.number: [] if p.scanned else _page_blocks(p, dropped, body) for p in pages
    }
    # what OCR reads: whole pages (scans; every page with 'always') and pictures on text pages
    jobs: list[tuple[int, Box4 | None]] = [
        (p.number, None) for p in pages if p.scanned or mode == "always"
    ]
    for p in pages:
        if not p.scanned and mode != "always":
            jobs += [(p.number, box) for box in p.pictures][: max(0, _MAX_PICTURES - len(jobs))]
    result = PdfResult([], title, len(pages), len(jobs))
    if jobs and mode == "off" and not any(per_page.values()):
        raise ParseError(
            f"empty: {filename} has no text layer; its {len(jobs)} scanned page(s) need OCR, "
            "which is off for this collection (ragstack ingest --ocr auto)"
        )
    if jobs and mode != "off":
        _run_ocr(doc, jobs, per_page, result, filename, ocr)
    result.blocks = [b for p in pages for b in per_page[p.number]]
    return result


def _run_ocr(
    doc: Any,
    jobs: list[tuple[int, Box4 | None]],
    per_page: dict[int, list[Block]],
    result: PdfResult,
    filename: str,
    ocr: Ocr,
) -> None:
    """OCR of whole pages (``box`` None: replaces the page's text) and of pictures (added)."""
    renderers = [_renderer(doc, n, ocr.settings.dpi, box) for n, box in jobs]
    text_layer = any(per_page.values()) and ocr.settings.mode != "always"
    try:
        ocr.check(filename)
        read = ocr.read_many(renderers, filename)
    except ParseError as exc:
        if not text_layer:
            raise  # nothing else to index: say why
        log.warning("%s", exc)  # the text layer is still worth indexing
        return
    failures: list[ParseError] = []
    for (number, box), found in zip(jobs, read, strict=True):
        if isinstance(found, ParseError):
            failures.append(found)
            continue
        result.ocr_pages += 1  # a page, or a picture on a text page
        result.ocr_seconds += found.seconds
        if box is None:
            per_page[number] = _ocr_blocks(found, number)
        else:
            per_page[number] += _ocr_blocks(found, number)
    if failures and not any(per_page.values()):
        raise failures[0]


def _ocr_blocks(found: OcrText, page: int) -> list[Block]:
    return [
        Block(text, kind, page, ocr=True) for kind, text in found.blocks if not is_page_number(text)
    ]
