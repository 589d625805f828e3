"""Which reader a document goes to, from its name, its declared type and its first bytes."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from ragstack.errors import UnsupportedDocumentError

Format = Literal[
    "text", "markdown", "pdf", "docx", "pptx", "xlsx", "xls", "html", "xml", "eml", "msg",
    "csv", "tsv", "epub", "odt", "rtf", "rst", "org", "doc", "ppt", "image",
]  # fmt: skip

_BY_SUFFIX: dict[str, Format] = {
    ".txt": "text", ".text": "text", ".log": "text", ".json": "text", ".ndjson": "text",
    ".jsonl": "text", ".yaml": "text", ".yml": "text", ".toml": "text", ".ini": "text",
    ".cfg": "text", ".py": "text", ".go": "text", ".js": "text", ".ts": "text", ".c": "text",
    ".h": "text", ".java": "text", ".rs": "text", ".sh": "text", ".sql": "text",
    ".md": "markdown", ".markdown": "markdown",
    ".pdf": "pdf", ".docx": "docx", ".pptx": "pptx", ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".xls": "xls", ".html": "html", ".htm": "html", ".xhtml": "html", ".xml": "xml",
    ".xsl": "xml", ".xslt": "xml", ".eml": "eml", ".p7s": "eml", ".msg": "msg", ".csv": "csv",
    ".tsv": "tsv", ".epub": "epub", ".odt": "odt", ".rtf": "rtf", ".rst": "rst", ".org": "org",
    ".doc": "doc", ".ppt": "ppt", ".png": "image", ".jpg": "image", ".jpeg": "image",
    ".gif": "image", ".bmp": "image", ".tif": "image", ".tiff": "image", ".heic": "image",
    ".heif": "image", ".webp": "image",
}  # fmt: skip
_BY_MIME: dict[str, Format] = {
    "text/plain": "text", "application/json": "text", "application/x-ndjson": "text",
    "application/yaml": "text", "application/x-yaml": "text", "text/markdown": "markdown",
    "text/x-markdown": "markdown", "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel": "xls", "text/html": "html", "application/xhtml+xml": "html",
    "application/xml": "xml", "text/xml": "xml", "message/rfc822": "eml",
    "application/vnd.ms-outlook": "msg", "text/csv": "csv",
    "text/tab-separated-values": "tsv", "application/epub+zip": "epub",
    "application/vnd.oasis.opendocument.text": "odt", "application/rtf": "rtf",
    "text/rtf": "rtf", "text/x-rst": "rst", "text/org": "org", "application/msword": "doc",
    "application/vnd.ms-powerpoint": "ppt", "image/png": "image", "image/jpeg": "image",
    "image/gif": "image", "image/bmp": "image", "image/tiff": "image", "image/heic": "image",
    "image/heif": "image", "image/webp": "image",
}  # fmt: skip
_NO_TEXT_SUFFIXES = {
    "image": (".svg",),
    "audio": (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac"),
    "video": (".mp4", ".mov", ".avi", ".mkv", ".webm"),
    "archive": (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"),
}  # fmt: skip
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*")
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", "audio"), (b"ID3", "audio"), (b"fLaC", "audio"), (b"OggS", "audio"),
    (b"\x1f\x8b", "archive"), (b"7z\xbc\xaf", "archive"), (b"Rar!", "archive"),
)  # fmt: skip
_WHY = {
    "image": "this kind of image is not read (OCR reads PNG, JPEG, TIFF, BMP, GIF, WebP and "
    "HEIC; export it to one of those)",
    "audio": "audio needs speech recognition, which is not enabled",
    "video": "video needs speech recognition, which is not enabled",
    "archive": "archives are not unpacked; extract them and ingest the folder",
}


def _refuse(what: str, filename: str) -> UnsupportedDocumentError:
    return UnsupportedDocumentError(f"unsupported: {filename}: {_WHY[what]}")


def detect_format(data: bytes, *, filename: str, mime: str | None) -> Format:
    """The reader for this document, or ``UnsupportedDocumentError`` saying why none fits."""
    name = PurePosixPath(filename).name.lower()
    suffix = PurePosixPath(name).suffix
    mime = (mime or "").split(";", 1)[0].strip().lower()
    if _BY_SUFFIX.get(suffix, _BY_MIME.get(mime) if suffix not in _BY_SUFFIX else None) == "image":
        return "image"
    for what, suffixes in _NO_TEXT_SUFFIXES.items():
        if suffix in suffixes or mime.startswith(f"{what}/"):
            raise _refuse(what, filename)
    if mime in ("application/zip", "application/x-tar", "application/gzip"):
        raise _refuse("archive", filename)
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if mime in _BY_MIME:
        return _BY_MIME[mime]
    if data.startswith(_IMAGE_MAGIC) or data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "image"
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise _refuse(what, filename)
    if data.startswith(b"%PDF-"):
        return "pdf"
    if mime.startswith("text/") or (data and b"\x00" not in data[:4096]):
        return "text"  # no extension, no type: text if it looks like text (decoding decides)
    raise UnsupportedDocumentError(
        f"unsupported: {filename}: {mime or 'unknown type'} is not a document format ragstack "
        "parses"
    )
