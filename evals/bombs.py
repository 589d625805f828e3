"""Decompression bombs, built in well under a second without inflating anything.

One megabyte of zeros deflated and then fully flushed always produces the same ~1 KB, so a
stream of N MiB of zeros is that block N times: a gzip body or a zip member that inflates a
thousand times. ``gzip_bomb`` is a gzip file; ``zip_bomb`` a DOCX, XLSX, PPTX, ODT or EPUB
with one such member (declared honestly, or with ``lie=True`` declaring a small size while
its data still inflates to the full size); ``many_members`` one with tens of thousands of
empty members.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import cache

MiB = 1 << 20
_STORED, _DEFLATED = 0, 8
_DOS_DATE = (0 << 11, 1 | (1 << 5))  # 00:00, 1980-01-01


@cache
def _zero_block() -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    c.compress(bytes(MiB))
    c.flush(zlib.Z_FULL_FLUSH)  # the first block; every later one is byte for byte the same
    return c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)


@cache
def _zeros_crc(mib: int) -> int:
    crc, block = 0, bytes(MiB)
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    return crc


def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``mib`` MiB of zeros, and the CRC-32 of those zeros."""
    return _zero_block() * mib + b"\x03\x00", _zeros_crc(mib)  # b"\x03\x00": the last block


def gzip_bomb(mib: int = 1024) -> bytes:
    """A gzip file (one member) inflating to ``mib`` MiB of zeros (about ``mib`` KB)."""
    data, crc = deflated_zeros(mib)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + data + struct.pack("<II", crc, (mib * MiB) & 0xFFFFFFFF)


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes  # as stored (raw deflate for method 8)
    crc: int
    size: int  # declared uncompressed size
    method: int = _DEFLATED

    @classmethod
    def text(cls, name: str, text: str) -> Member:
        raw = text.encode()
        return cls(name, raw, zlib.crc32(raw), len(raw), _STORED)


def write_zip(members: list[Member]) -> bytes:
    """A zip archive of ``members`` written as declared (no zipfile checks in the way)."""
    out = bytearray()
    central = bytearray()
    time_, date = _DOS_DATE
    for m in members:
        name = m.name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, m.method, time_, date, m.crc, len(m.data),
            m.size, len(name), 0,
        )  # fmt: skip
        out += name + m.data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, m.method, time_, date, m.crc,
            len(m.data), m.size, len(name), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += name
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                       start, 0)  # fmt: skip
    return bytes(out)


_TYPES = "http://schemas.openxmlformats.org/package/2006"
_SKELETONS: dict[str, list[tuple[str, str]]] = {
    "docx": [
        ("[Content_Types].xml",
         f"<Types xmlns='{_TYPES}/content-types'><Default Extension='xml' "
         "ContentType='application/xml'/></Types>"),
        ("word/document.xml",
         "<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'>"
         "<w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>"),
    ],
    "xlsx": [("[Content_Types].xml", f"<Types xmlns='{_TYPES}/content-types'/>"),
             ("xl/workbook.xml", "<workbook/>")],
    "pptx": [("[Content_Types].xml", f"<Types xmlns='{_TYPES}/content-types'/>"),
             ("ppt/presentation.xml", "<presentation/>")],
    "odt": [("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", "<office:document-content/>")],
    "epub": [("mimetype", "application/epub+zip"),
             ("META-INF/container.xml", "<container/>")],
}  # fmt: skip
FORMATS = tuple(_SKELETONS)


def zip_bomb(fmt: str, mib: int = 1024, *, lie: bool = False) -> bytes:
    """A ``fmt`` container with a member of ``mib`` MiB of zeros (``lie``: declared as 1 KB)."""
    data, crc = deflated_zeros(mib)
    size = 1024 if lie else mib * MiB
    media = "word/media" if fmt == "docx" else "media"
    members = [Member.text(n, t) for n, t in _SKELETONS[fmt]]
    members.append(Member(f"{media}/image1.bin", data, crc, size))
    return write_zip(members)


def many_members(fmt: str, count: int = 20_000) -> bytes:
    """A ``fmt`` container with ``count`` empty members."""
    members = [Member.text(n, t) for n, t in _SKELETONS[fmt]]
    members += [Member.text(f"parts/p{i}.xml", "") for i in range(count)]
    return write_zip(members)
