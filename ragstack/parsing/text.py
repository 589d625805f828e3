"""Bytes of unknown encoding to text, and plain text / Markdown to blocks (no NLP, fast).

Decoding order: a byte-order mark (UTF-8/16/32), BOM-less UTF-16/32 recognised by its zero
bytes, strict UTF-8, the charset a document declares (HTML ``<meta charset>``, XML declaration),
then charset-normalizer's best guess, preferring cp1252 over its neighbours when it reads
about as cleanly (short Western text is easily mistaken for cp1250).
"""

from __future__ import annotations

import codecs
import re

from ragstack.errors import ParseError
from ragstack.parsing.model import Block

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED = re.compile(rb"""(?:charset|encoding)\s*=\s*["']?([A-Za-z0-9_.:-]{2,40})""", re.I)
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_LIST = re.compile(r"^ {0,3}(?:[-*+•]|\d{1,3}[.)])[ \t]+\S")


def _utf16_32_without_bom(data: bytes) -> str | None:
    head = data[:4096]
    if len(head) < 4 or head.count(0) < len(head) // 4:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    quads = [head[i::4].count(0) for i in range(4)]
    n = len(head) // 4
    for encoding, ok in (
        ("utf-32-le", quads[1] > 0.9 * n and quads[2] > 0.9 * n and quads[3] > 0.9 * n),
        ("utf-32-be", quads[0] > 0.9 * n and quads[1] > 0.9 * n and quads[2] > 0.9 * n),
        ("utf-16-le", odd > 0.4 * len(head) / 2 and even < 0.1 * len(head) / 2),
        ("utf-16-be", even > 0.4 * len(head) / 2 and odd < 0.1 * len(head) / 2),
    ):
        if ok:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    return None


def _declared(data: bytes) -> str | None:
    m = _DECLARED.search(data[:2048])
    if m is None:
        return None
    name = m.group(1).decode("ascii").lower()
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    if codec.name.startswith(("utf-16", "utf-32")):
        return None  # the bytes would have had zeros; a wrong claim
    try:
        return data.decode(codec.name)
    except UnicodeDecodeError:
        return None


def decode_text(data: bytes) -> str:
    """Text from bytes of unknown encoding; ``ParseError`` for data that is not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ParseError(f"corrupt: invalid {encoding} after its byte-order mark") from exc
    if b"\x00" in data[:8192]:  # valid UTF-8, but no text has NULs: UTF-16/32 or binary
        wide = _utf16_32_without_bom(data)
        if wide is not None:
            return wide
    else:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data[:8192]:
        raise ParseError("corrupt: binary data, not text")
    declared = _declared(data)
    if declared is not None:
        return declared
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ParseError("corrupt: not text in any known encoding")
    if best.encoding.startswith(("cp125", "iso8859", "latin", "mac_")):
        western = from_bytes(data, cp_isolation=["cp1252"]).best()
        if western is not None and western.chaos <= best.chaos + 0.05:
            best = western
    return str(best)


def plain_blocks(text: str, *, markdown: bool) -> list[Block]:
    """Paragraphs split at blank lines; in Markdown, ATX and setext headings become titles
    (their level sets the section depth), fenced code stays one block, list items are kept."""
    blocks: list[Block] = []
    para: list[str] = []
    fence: str | None = None

    def flush(kind: str = "paragraph") -> None:
        body = "\n".join(para).strip()
        if body:
            first = para[0] if para else ""
            is_list = markdown and kind == "paragraph" and _LIST.match(first) is not None
            blocks.append(
                Block(body, "list_item" if is_list else "code" if kind == "code" else "paragraph")
            )
        para.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if markdown and fence is not None:
            if line.strip().startswith(fence):
                flush("code")
                fence = None
            else:
                para.append(line)
            continue
        if markdown:
            m = _FENCE.match(line)
            if m:
                flush()
                fence = m.group(1)
                continue
            m = _ATX.match(line)
            if m:
                flush()
                blocks.append(Block(m.group(2), "title", depth=len(m.group(1)) - 1))
                continue
            if para and len(para) == 1 and _SETEXT.match(line) and not _LIST.match(para[0]):
                heading = para.pop()
                blocks.append(Block(heading, "title", depth=0 if line.strip()[0] == "=" else 1))
                continue
        if line.strip():
            para.append(line)
        else:
            flush()
    flush("code" if fence is not None else "paragraph")
    return blocks
