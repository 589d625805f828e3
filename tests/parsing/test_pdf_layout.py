"""PDFs in reading order, page furniture dropped, tables as Markdown tables: the geometry on
its own, then real PDFs drawn by reportlab in the layouts that defeat a file-order reader."""

from __future__ import annotations

import random

import pytest

from evals.pdf_render import labels_of, render, table_docx, table_pdf, table_rows
from ragstack.ingest.chunking import Block, Chunker, WordCounter
from ragstack.parsing import ParsedDocument, parse
from ragstack.parsing.layout import (
    Glyph,
    Line,
    furniture,
    is_page_number,
    join_lines,
    lines,
    reading_order,
)
from ragstack.parsing.ocr import OcrSettings
from ragstack.parsing.tables import markdown_table

TITLE = "Vitamin D status and respiratory infection in adults"
TEXT = " ".join(
    f"Sentence {i} reports that participant group {i} showed a measurable response to "
    f"supplementation number {i * 7} over the winter season."
    for i in range(1, 41)
)
NO_OCR = OcrSettings(mode="off")


def body_of(doc: ParsedDocument) -> str:
    return " ".join(" ".join(e.text for e in doc.elements if e.kind != "title").split())


def word(text: str, x: float, top: float, size: float = 10.0) -> list[Glyph]:
    return [Glyph(ch, x + i * 5, top, x + i * 5 + 5, top + size, size) for i, ch in enumerate(text)]


def box(text: str, x0: float, top: float, x1: float) -> Line:
    return Line(text, x0, top, x1, top + 10, 10.0)


# -- geometry -------------------------------------------------------------------------------------


def test_glyphs_drawn_out_of_order_make_their_lines() -> None:
    glyphs = word("world", 130, 100) + word("second", 100, 120) + word("hello", 100, 100)
    found = lines(glyphs)
    assert [ln.text for ln in found] == ["hello world", "second"]


def test_a_gutter_splits_segments_on_one_baseline() -> None:
    glyphs = word("left", 72, 100) + word("right", 320, 100)
    assert [ln.text for ln in lines(glyphs)] == ["left", "right"]


def test_reading_order_reads_columns_under_a_spanning_title() -> None:
    title = box("title over both", 72, 50, 540)
    left = [box(f"left {i}", 72, 100 + 12 * i, 290) for i in range(5)]
    right = [box(f"right {i}", 320, 100 + 12 * i, 540) for i in range(5)]
    shuffled = [*right, title, *left]
    random.Random(3).shuffle(shuffled)
    order = [b.text for b in reading_order(shuffled) if isinstance(b, Line)]
    assert order == ["title over both"] + [f"left {i}" for i in range(5)] + [
        f"right {i}" for i in range(5)
    ]


def test_one_column_with_short_lines_is_not_split() -> None:
    column = [box(f"line {i} of a paragraph", 72, 100 + 12 * i, 540) for i in range(6)]
    column.append(box("end.", 72, 172, 100))
    assert [b.text for b in reading_order(column) if isinstance(b, Line)] == [
        b.text for b in column
    ]


def test_hyphenated_words_are_joined_and_compounds_kept() -> None:
    assert join_lines(["the treat-", "ment was", "effective"]) == "the treatment was effective"
    assert join_lines(["an SRA-", "and RRM-dependent"]) == "an SRA- and RRM-dependent"
    assert join_lines(["ends with a dash -", "Next"]) == "ends with a dash - Next"


@pytest.mark.parametrize("text", ["7", "Page 3", "page 3 of 12", "- 4 -", "xii", "12/40"])
def test_page_numbers(text: str) -> None:
    assert is_page_number(text)


@pytest.mark.parametrize("text", ["Chapter 7 results", "3 patients died", "Table 2"])
def test_not_page_numbers(text: str) -> None:
    assert not is_page_number(text)


def test_running_headers_repeat_and_titles_do_not() -> None:
    pages = []
    for n in range(1, 4):
        header = box(f"Annual report 2024 - section {n}", 72, 20, 400)
        body = box(f"Body text of page {n}", 72, 300, 500)
        first = box("Introduction", 72, 40, 200) if n == 1 else body
        footer = box(f"{n}", 300, 770, 310)
        pages.append((792.0, [header, first, body, footer]))
    dropped = furniture(pages, body=10.0)
    kept = [ln.text for _h, page in pages for ln in page if id(ln) not in dropped]
    assert "Introduction" in kept and "Body text of page 2" in kept
    assert not any(t.startswith("Annual report") or t.isdigit() for t in kept)


# -- real PDFs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["single", "columns"])
def test_pdf_text_in_reading_order(layout: str) -> None:
    pdf = render(layout, TITLE, TEXT, random.Random(5))
    doc = parse(pdf, filename="paper.pdf", mime=None, ocr=NO_OCR)
    assert body_of(doc) == TEXT
    assert doc.title == TITLE
    assert doc.elements[0].kind == "title"
    assert all(e.section[0] == TITLE for e in doc.elements)


def test_two_columns_drawn_out_of_order_defeat_file_order() -> None:
    """The layout is a real test: pypdf (today's path) does not read it in order."""
    from evals.bench_pdf import pypdf_parse

    pdf = render("columns", TITLE, TEXT, random.Random(5))
    assert body_of(pypdf_parse(pdf)) != TEXT


def test_running_header_footer_and_page_numbers_are_dropped() -> None:
    pdf = render("furniture", TITLE, TEXT, random.Random(5))
    doc = parse(pdf, filename="reprint.pdf", mime=None, ocr=NO_OCR)
    assert doc.pages is not None and doc.pages >= 3
    assert body_of(doc) == TEXT
    assert "Journal of Claims" not in doc.text and "Page 1 of" not in doc.text
    pages = [e.page or 0 for e in doc.elements]
    assert pages == sorted(pages) and pages[-1] == doc.pages  # pages kept for citations


def test_ruled_pdf_table_becomes_a_markdown_table() -> None:
    rows = table_rows(random.Random(2), 5, 4)
    doc = parse(table_pdf(rows, "Quarterly figures"), filename="t.pdf", mime=None, ocr=NO_OCR)
    tables = [e for e in doc.elements if e.kind == "table"]
    assert len(tables) == 1
    assert tables[0].text == markdown_table(rows)
    assert tables[0].section == ("Quarterly figures",)
    assert doc.text.count(rows[1][0]) == 1  # the table's text is not repeated as paragraphs


def test_docx_table_becomes_a_markdown_table() -> None:
    rows = table_rows(random.Random(4), 3, 3)
    doc = parse(table_docx(rows, "Budget"), filename="t.docx", mime=None, ocr=NO_OCR)
    assert [e.text for e in doc.elements if e.kind == "table"] == [markdown_table(rows)]


def test_long_table_is_chunked_by_rows_with_its_header_as_context() -> None:
    rows = table_rows(random.Random(8), 60, 4)
    doc = parse(table_pdf(rows, "Regional figures"), filename="t.pdf", mime=None, ocr=NO_OCR)
    blocks = [Block(e.text, e.kind, e.page, e.section) for e in doc.elements]
    text, chunks = Chunker(WordCounter(), max_tokens=80, overlap_tokens=8).chunk(blocks)
    table_chunks = [c for c in chunks if "|" in c.text]
    assert len(table_chunks) >= 4
    header = "\n".join(markdown_table(rows).split("\n")[:2])
    for c in table_chunks:
        assert text[c.char_start : c.char_end] == c.text  # one span of the document
        assert all(line.startswith("|") and line.endswith("|") for line in c.text.split("\n"))
    # a table per page (pages stay exact for citations; page 2 repeats the header row)
    assert sorted({c.page or 0 for c in table_chunks}) == [1, 2]
    for c in table_chunks:
        if header not in c.text:
            assert c.section == f"Regional figures\n{header}"
        else:
            assert c.section == "Regional figures" and c.text.startswith(header)
    assert sum(header not in c.text for c in table_chunks) >= 2
    # every labelled cell sits in a chunk beside its row's first cell and its column's name
    for cell in labels_of(rows):
        assert any(
            any(cell.row in ln and cell.value in ln for ln in c.text.split("\n"))
            and cell.column in f"{c.section}\n{c.text}"
            for c in table_chunks
        ), cell


def test_corrupt_and_truncated_pdfs_say_so() -> None:
    pdf = render("single", TITLE, TEXT, random.Random(1))
    from ragstack.errors import ParseError

    with pytest.raises(ParseError, match=r"^corrupt:"):
        parse(pdf[: len(pdf) // 3], filename="cut.pdf", mime=None, ocr=NO_OCR)


def test_pdfs_with_too_many_pages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragstack.errors import DocumentTooLargeError
    from ragstack.parsing import pdf

    monkeypatch.setattr(pdf, "MAX_PAGES", 2)  # the limit, lowered: 10,000 pages take a while
    reprint = render("furniture", TITLE, TEXT, random.Random(5))
    with pytest.raises(DocumentTooLargeError, match=r"^too large:.*pages"):
        parse(reprint, filename="long.pdf", mime=None, ocr=NO_OCR)
