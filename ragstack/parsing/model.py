"""A parsed document: its text, and the elements it is made of with their spans in that text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ElementKind = Literal["title", "paragraph", "list_item", "table", "code", "caption"]
ELEMENT_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Element:
    """One block of the document in reading order.

    ``section`` is the path of headings the element sits under (a title's own path ends
    with itself); ``page`` is 1-based where the format has pages; ``text[start:end]`` of the
    document is exactly ``text``.
    """

    text: str
    kind: ElementKind
    page: int | None
    section: tuple[str, ...]
    start: int
    end: int
    ocr: bool = False  # read by OCR from an image or a scanned page


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """The document's text (elements joined by blank lines) and its elements.

    ``ocr_inputs`` says whether OCR settings can change this document: a document without
    images or scanned pages parses the same whatever they are (see ``DocumentParser.tag``).
    """

    text: str
    elements: tuple[Element, ...]
    title: str
    format: str
    pages: int | None = None
    ocr_inputs: int = 0  # images and scanned pages OCR reads (or would read, were it on)
    ocr_pages: int = 0  # pages and images read by OCR in this parse
    ocr_seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"ParsedDocument(format={self.format!r}, title={self.title[:60]!r}, "
            f"elements={len(self.elements)}, chars={len(self.text)}, pages={self.pages}, "
            f"ocr_pages={self.ocr_pages})"
        )


@dataclass(frozen=True, slots=True)
class Block:
    """What a format reader produces, before the document assembles text and spans.

    ``depth`` is a title's heading level (0 = top); ``None`` for other kinds.
    """

    text: str
    kind: ElementKind
    page: int | None = None
    depth: int | None = None
    ocr: bool = False


def assemble(
    blocks: Iterable[Block],
    *,
    format: str,
    title: str = "",
    pages: int | None = None,
    ocr: tuple[int, int, float] = (0, 0, 0.0),
) -> ParsedDocument:
    """Joins non-empty blocks into one text, tracking each one's span and section path;
    ``ocr`` is (OCR inputs, pages read by OCR, seconds OCR took)."""
    parts: list[str] = []
    elements: list[Element] = []
    section: list[tuple[int, str]] = []
    pos = 0
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.kind == "title":
            depth = block.depth or 0
            heading = " ".join(text.split())[:200]
            section = [(d, t) for d, t in section if d < depth] + [(depth, heading)]
        if parts:
            parts.append(ELEMENT_SEPARATOR)
            pos += len(ELEMENT_SEPARATOR)
        parts.append(text)
        path = tuple(t for _d, t in section)
        elements.append(
            Element(text, block.kind, block.page, path, pos, pos + len(text), block.ocr)
        )
        pos += len(text)
    first_title = next((e.text for e in elements if e.kind == "title"), "")
    return ParsedDocument(
        text="".join(parts),
        elements=tuple(elements),
        title=(title.strip() or first_title)[:300],
        format=format,
        pages=pages,
        ocr_inputs=ocr[0],
        ocr_pages=ocr[1],
        ocr_seconds=ocr[2],
    )
