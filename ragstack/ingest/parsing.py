"""Routes a document to the parser for its type; says clearly what cannot be parsed."""

from __future__ import annotations

from ragstack.errors import UnsupportedDocumentError
from ragstack.ingest.chunking import Block
from ragstack.ingest.documents import PdfParser, UnstructuredParser
from ragstack.ingest.plaintext import PlainTextParser

_NO_TEXT = ("audio/", "video/", "image/")
_ARCHIVES = (
    "application/zip",
    "application/x-tar",
    "application/gzip",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
)
_PLAIN = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "text/x-python",
        "text/x-go",
        "application/javascript",
        "text/x-c",
        "text/x-sh",
        "application/x-sh",
    }
)
_UNSTRUCTURED_SUFFIXES = (
    ".docx",
    ".pptx",
    ".xlsx",
    ".html",
    ".htm",
    ".xhtml",
    ".eml",
    ".msg",
    ".epub",
    ".odt",
    ".rtf",
    ".csv",
    ".tsv",
    ".org",
    ".rst",
    ".doc",
    ".ppt",
    ".xls",
)
_PLAIN_SUFFIXES = (
    ".txt",
    ".text",
    ".log",
    ".json",
    ".ndjson",
    ".jsonl",
    ".xml",
    ".yaml",
    ".yml",
    ".py",
    ".go",
    ".js",
    ".ts",
    ".c",
    ".h",
    ".sh",
    ".toml",
    ".ini",
)


class DocumentParser:
    def __init__(self) -> None:
        self.text = PlainTextParser()
        self.pdf = PdfParser()
        self.office = UnstructuredParser()

    def parse(self, data: bytes, *, filename: str, mime: str | None) -> tuple[str, list[Block]]:
        name = filename.lower()
        mime = mime or ""
        if mime.startswith(_NO_TEXT):
            kind = mime.split("/", 1)[0]
            raise UnsupportedDocumentError(
                f"unsupported: {kind} files ({mime}) carry no text "
                "we can extract (no OCR or speech recognition)"
            )
        if mime in _ARCHIVES or name.endswith((".zip", ".tar", ".gz", ".7z", ".rar")):
            raise UnsupportedDocumentError(
                "unsupported: archives are not unpacked; extract them and ingest the folder"
            )
        if name.endswith((".md", ".markdown")) or mime in ("text/markdown", "text/x-markdown"):
            return self.text.parse(data, filename=filename, mime="text/markdown")
        if name.endswith(".pdf") or mime == "application/pdf":
            return self.pdf.parse(data, filename=filename, mime=mime)
        if name.endswith(_UNSTRUCTURED_SUFFIXES):
            return self.office.parse(data, filename=filename, mime=mime)
        if name.endswith(_PLAIN_SUFFIXES) or mime in _PLAIN or mime.startswith("text/"):
            return self.text.parse(data, filename=filename, mime="text/plain")
        raise UnsupportedDocumentError(
            f"unsupported: {mime or 'unknown type'} ({filename}) is not a document format "
            "ragstack parses"
        )
