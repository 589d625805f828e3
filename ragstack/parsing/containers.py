"""Zip-based documents (DOCX, PPTX, XLSX, ODT, EPUB) checked before any reader unpacks them.

A zip bomb is a small file that inflates to gigabytes. Before a reader sees one:

1. its central directory must declare at most ``max_members`` members, at most
   ``max_unpacked`` bytes unpacked in all, no member over ``GRACE_BYTES`` may declare more
   than ``max_ratio`` times its compressed size (a zip bomb's signature; Apache POI's
   ZipSecureFile uses the same test), and none may carry more compressed bytes than its
   declared size could need (a member lying about its size);
2. every member is inflated once, ``_CHUNK`` bytes at a time, and must produce exactly its
   declared size with its declared CRC. CPython's ``zipfile`` never returns more than a
   member's declared ``file_size`` (``ZipExtFile._read1`` cuts its output at ``_left``, set
   from the central directory, and checks the CRC at the end), so once the declared sizes are
   bounded, and shown honest, no reader using ``zipfile`` (python-docx, python-pptx,
   openpyxl) can inflate more. Step 2 matters because a single ``read()`` of a member that
   lies about its size would still inflate up to 1 GiB (``ZipExtFile.MAX_N``) before the
   cut;
3. formats read by another zip implementation (ODT and EPUB go through pandoc) get a copy
   rebuilt from what step 2 read, so they parse exactly the members that were checked.

Nested archives are not expanded: a member that is itself a zip counts with its declared
size, and no reader here opens it. Data that is not a zip is passed on unchanged (the reader
reports it as corrupt or encrypted).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from ragstack.errors import DocumentTooLargeError, ParseError

ZIP_FORMATS = frozenset({"docx", "pptx", "xlsx", "odt", "epub"})
REBUILT_FORMATS = frozenset({"odt", "epub"})  # read by pandoc, not by Python's zipfile
GRACE_BYTES = 1 << 20  # members this small are never a ratio problem
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ContainerLimits:
    max_unpacked: int
    max_ratio: int = 200
    max_members: int = 10_000


def check_container(data: bytes, filename: str, fmt: str, limits: ContainerLimits) -> bytes:
    """``data`` if it is a zip-based format within ``limits`` (or no zip at all), a rebuilt
    copy for the formats another zip reader parses; ``DocumentTooLargeError`` (a zip bomb) or
    ``ParseError`` (a member that does not match its declaration) otherwise."""
    if fmt not in ZIP_FORMATS or not data.startswith(b"PK"):
        return data
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        return data  # not a zip: the reader says what it is instead
    with archive:
        members = archive.infolist()
        _check_declared(members, filename, limits)
        rebuilt = io.BytesIO() if fmt in REBUILT_FORMATS else None
        out = zipfile.ZipFile(rebuilt, "w") if rebuilt is not None else None
        for info in members:
            body = _inflate(archive, info, filename, keep=out is not None)
            if out is not None:
                out.writestr(_clean(info), body)
        if out is None or rebuilt is None:
            return data
        out.close()
        return rebuilt.getvalue()


def _check_declared(members: list[zipfile.ZipInfo], filename: str, limits: ContainerLimits) -> None:
    if len(members) > limits.max_members:
        raise DocumentTooLargeError(
            f"too large: {filename} has {len(members):,} archive members, over the limit of "
            f"{limits.max_members:,} (a zip bomb?)"
        )
    total = sum(m.file_size for m in members)
    if total > limits.max_unpacked:
        raise DocumentTooLargeError(
            f"too large: {filename} unpacks to {total:,} bytes, over the limit of "
            f"{limits.max_unpacked:,} (a zip bomb?)"
        )
    for m in members:
        if m.compress_size > m.file_size + m.file_size // 100 + 1024:  # deflate never grows so
            raise DocumentTooLargeError(
                f"too large: {m.filename[:100]!r} in {filename} carries {m.compress_size:,} "
                f"compressed bytes but declares {m.file_size:,} unpacked (a zip bomb?)"
            )
        if m.file_size > GRACE_BYTES and m.file_size > limits.max_ratio * max(m.compress_size, 1):
            ratio = m.file_size // max(m.compress_size, 1)
            raise DocumentTooLargeError(
                f"too large: {filename}: member {m.filename[:100]!r} inflates {ratio:,}x, over "
                f"the limit of {limits.max_ratio}x (a zip bomb?)"
            )


def _inflate(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, filename: str, *, keep: bool
) -> bytes:
    """The member's bytes (``keep``) after checking they are exactly what it declares."""
    parts: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if keep:
                    parts.append(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ParseError(
            f"corrupt: {filename}: archive member {info.filename[:100]!r} does not match its "
            f"declared size or checksum ({type(exc).__name__})"
        ) from None
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
        raise ParseError(f"password-protected: {filename} has encrypted archive members") from exc
    if size != info.file_size:
        raise ParseError(
            f"corrupt: {filename}: archive member {info.filename[:100]!r} is {size:,} bytes, "
            f"not the {info.file_size:,} it declares"
        )
    return b"".join(parts)


def _clean(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A fresh entry with the member's name, stored as the original was (EPUB wants its
    ``mimetype`` first and uncompressed)."""
    entry = zipfile.ZipInfo(info.filename)
    entry.compress_type = (
        zipfile.ZIP_STORED if info.compress_type == zipfile.ZIP_STORED else zipfile.ZIP_DEFLATED
    )
    return entry
