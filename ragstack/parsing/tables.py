"""Tables as Markdown tables: a header row, a rule, one line per row.

Every reader that finds a table (PDF rulings through pdfplumber, OCR'd grids, the HTML that
unstructured gives for DOCX, XLSX, PPTX and web pages) turns its cells into rows and calls
``markdown_table``; the chunker splits a long table by lines (rows) and carries the first two
(``TABLE_HEADER_LINES``: header and rule) as the context of every later piece.
"""

from __future__ import annotations

from collections.abc import Sequence

TABLE_HEADER_LINES = 2


def _cell(value: object) -> str:
    text = " ".join(str(value if value is not None else "").split())
    return text.replace("|", "\\|")


def clean_rows(rows: Sequence[Sequence[object]]) -> list[list[str]]:
    """Cells as one-line strings; empty rows and columns dropped; rows padded to one width."""
    cells = [[_cell(c) for c in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return []
    width = max(len(r) for r in cells)
    cells = [r + [""] * (width - len(r)) for r in cells]
    keep = [j for j in range(width) if any(r[j] for r in cells)]
    return [[r[j] for j in keep] for r in cells]


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """The rows as a Markdown table whose first row is the header ("" when nothing is left).

    Header cells left empty by merged cells take the name of the cell to their left, so every
    column has a name to be found by.
    """
    cells = clean_rows(rows)
    if not cells:
        return ""
    header = list(cells[0])
    for j in range(1, len(header)):
        if not header[j] and header[j - 1]:
            header[j] = header[j - 1]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def is_markdown_table(text: str) -> bool:
    lines = text.split("\n", 2)
    return len(lines) >= 2 and lines[0].startswith("|") and lines[1].startswith("|---")


def html_table_rows(html: str) -> list[list[str]]:
    """The rows of the first table in ``html`` (``colspan`` cells repeated, so columns line up)."""
    import lxml.html

    try:
        root = lxml.html.fromstring(html)
    except (ValueError, TypeError):  # lxml's ParserError is a ValueError
        return []
    rows: list[list[str]] = []
    for tr in root.iter("tr"):
        row: list[str] = []
        for cell in tr:
            if not isinstance(cell.tag, str) or cell.tag not in ("td", "th"):
                continue
            try:
                span = max(1, min(int(cell.get("colspan", "1")), 50))
            except ValueError:
                span = 1
            text = " ".join(cell.text_content().split())
            row += [text] * span
        rows.append(row)
    return rows
