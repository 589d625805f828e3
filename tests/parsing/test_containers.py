"""Zip-based documents are checked before a reader unpacks them: bombs are ``too_large``,
members that lie about their size are refused, real documents pass untouched."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import pytest

from evals.bench_api import rss_mb
from evals.bombs import FORMATS, Member, MiB, deflated_zeros, many_members, write_zip, zip_bomb
from ragstack.errors import DocumentTooLargeError, ParseError
from ragstack.ingest.prepare import error_kind
from ragstack.parsing import DocumentParser
from ragstack.parsing.containers import ContainerLimits, check_container

LIMITS = ContainerLimits(max_unpacked=250 * MiB)


@pytest.mark.parametrize("fmt", FORMATS)
def test_zip_bombs_are_too_large_before_anything_inflates(fmt: str) -> None:
    before = rss_mb(os.getpid())
    with pytest.raises(DocumentTooLargeError, match=r"unpacks to 1,073,74\d,\d+ bytes"):
        check_container(zip_bomb(fmt, 1024), f"b.{fmt}", fmt, LIMITS)  # 1 GiB declared
    with pytest.raises(DocumentTooLargeError, match=r"inflates 1,011x, over the limit of 200x"):
        check_container(zip_bomb(fmt, 100), f"b.{fmt}", fmt, LIMITS)  # under the total
    with pytest.raises(DocumentTooLargeError, match="20,002 archive members"):
        check_container(many_members(fmt), f"b.{fmt}", fmt, LIMITS)
    with pytest.raises(DocumentTooLargeError, match="declares 1,024 unpacked"):
        check_container(zip_bomb(fmt, 1024, lie=True), f"b.{fmt}", fmt, LIMITS)
    assert rss_mb(os.getpid()) - before < 32


def test_a_member_inflating_past_its_declared_size_is_cut_there_and_refused() -> None:
    """Declared 2 MiB (plausible for its ~100 KB), inflating to 100 MiB: zipfile stops at the
    declared size, the CRC does not match, and nothing past 2 MiB was ever produced."""
    data, crc = deflated_zeros(100)
    liar = Member("word/media/image1.bin", data, crc, 2 * MiB)
    docx = write_zip([Member.text("word/document.xml", "<w:document/>"), liar])
    before = rss_mb(os.getpid())
    with pytest.raises(ParseError, match=r"corrupt: .* does not match its declared size"):
        check_container(docx, "liar.docx", "docx", LIMITS)
    assert rss_mb(os.getpid()) - before < 16


def test_the_parser_records_bombs_as_too_large() -> None:
    parser = DocumentParser(max_bytes=10 * MiB)  # unpacked limit: 50 MiB
    for fmt in FORMATS:
        with pytest.raises(DocumentTooLargeError) as caught:
            parser.parse(zip_bomb(fmt, 64), filename=f"b.{fmt}", mime=None)
        assert error_kind(caught.value) == "too_large"
        assert str(caught.value).startswith("too large:")
    small = DocumentParser(max_bytes=MiB, max_unpacked_bytes=MiB // 2)
    with pytest.raises(DocumentTooLargeError, match="over the limit of 524,288"):
        small.parse(zip_bomb("docx", 1), filename="b.docx", mime=None)


def test_readers_that_use_another_zip_parser_get_only_the_checked_members() -> None:
    """EPUB and ODT go to pandoc: it is handed a copy rebuilt from the central directory, so
    an entry smuggled in as a local header alone never reaches it."""
    text = "<html><body><p>Checked text.</p></body></html>"
    members = [Member.text("mimetype", "application/epub+zip"), Member.text("a.xhtml", text)]
    name = b"smuggled.xhtml"
    smuggled = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 33, 0, 5, 5, len(name), 0)
    epub = smuggled + name + b"bombs" + write_zip(members)
    rebuilt = check_container(epub, "s.epub", "epub", LIMITS)
    assert b"smuggled" not in rebuilt
    with zipfile.ZipFile(io.BytesIO(rebuilt)) as z:
        assert z.namelist() == ["mimetype", "a.xhtml"]
        assert z.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        assert z.read("a.xhtml").decode() == text
    docx = write_zip([Member.text("word/document.xml", "<w:document/>")])
    assert check_container(docx, "d.docx", "docx", LIMITS) is docx, "zipfile readers: as is"
    assert check_container(b"not a zip", "x.docx", "docx", LIMITS) == b"not a zip"
    assert check_container(b"PK\x03\x04 broken", "x.docx", "docx", LIMITS) == b"PK\x03\x04 broken"


def test_real_documents_pass_and_still_parse(shared_data: Path) -> None:
    folder = shared_data / "mixed-docs"
    suffixes = {".docx", ".pptx", ".xlsx", ".odt", ".epub"}
    files = sorted(p for p in folder.iterdir() if p.suffix in suffixes)
    assert len(files) > 30
    for path in files:
        data = path.read_bytes()
        fmt = "xlsx" if path.suffix == ".xlsx" else path.suffix[1:]
        out = check_container(data, path.name, fmt, LIMITS)  # no false alarm on any of them
        assert out is data or fmt in ("odt", "epub")
    parser = DocumentParser()
    for name, words in (("simple.odt", "favorite things"), ("winter-sports.epub", "Switzerland")):
        doc = parser.parse((folder / name).read_bytes(), filename=name, mime=None)
        assert words in doc.text, name
