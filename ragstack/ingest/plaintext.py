"""Parsing of plain text and Markdown without unstructured (fast path for text corpora).

Markdown ATX headings (``#``..``######``) open sections; paragraphs are separated by blank
lines. Bytes are decoded as UTF-8 (with a BOM check for UTF-16/32), falling back to
charset detection for other encodings.
"""

from __future__ import annotations

import codecs
import re

from ragstack.errors import ParseError
from ragstack.ingest.chunking import Block

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding; raises ``ParseError`` for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ParseError("corrupt: not text in any known encoding")
    if best.encoding.startswith(("cp125", "iso8859", "latin", "mac_")):
        # Short Western text is often mistaken for a neighbouring code page (cp1250 for
        # latin-1 "crème"); when cp1252 reads it about as cleanly, it is the likelier one.
        western = from_bytes(data, cp_isolation=["cp1252"]).best()
        if western is not None and western.chaos <= best.chaos + 0.05:
            best = western
    return str(best)


def parse_text(text: str, *, markdown: bool) -> list[Block]:
    blocks: list[Block] = []
    section: list[tuple[int, str]] = []
    para: list[str] = []

    def flush() -> None:
        body = "\n".join(para).strip()
        if body:
            blocks.append(Block(body, "paragraph", None, tuple(t for _lvl, t in section)))
        para.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        m = _HEADING.match(line) if markdown else None
        if m:
            flush()
            level = len(m.group(1))
            section = [(lvl, t) for lvl, t in section if lvl < level] + [(level, m.group(2))]
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return blocks


class PlainTextParser:
    """``Parser`` for text/plain and text/markdown."""

    MIMES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})

    def handles(self, filename: str, mime: str | None) -> bool:
        return (mime or "") in self.MIMES or filename.lower().endswith((".txt", ".md", ".markdown"))

    def parse(self, data: bytes, *, filename: str, mime: str | None) -> tuple[str, list[Block]]:
        if b"\x00" in data[:4096] and not data.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        ):
            raise ParseError("corrupt: binary data in a text file")
        text = decode_text(data)
        markdown = (mime or "").endswith("markdown") or filename.lower().endswith(
            (".md", ".markdown")
        )
        blocks = parse_text(text, markdown=markdown)
        if not blocks:
            raise ParseError("empty: the file has no text")
        title = next((b.section[0] for b in blocks if b.section), "")
        return title, blocks
