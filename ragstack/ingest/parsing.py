"""Document parsing: plain text and Markdown natively; every other format through
unstructured (offline, ``fast`` strategy for PDFs) when it is installed."""

from __future__ import annotations

from ragstack.errors import UnsupportedDocumentError
from ragstack.ingest.chunking import Block
from ragstack.ingest.plaintext import PlainTextParser

_NEVER = ("audio/", "video/", "image/")


class DocumentParser:
    def __init__(self) -> None:
        self.text = PlainTextParser()

    def parse(self, data: bytes, *, filename: str, mime: str | None) -> tuple[str, list[Block]]:
        if mime and mime.startswith(_NEVER):
            kind = mime.split("/", 1)[0]
            raise UnsupportedDocumentError(
                f"unsupported: {kind} files ({mime}) carry no text "
                "we can extract (no OCR or speech recognition)"
            )
        if self.text.handles(filename, mime):
            return self.text.parse(data, filename=filename, mime=mime)
        raise UnsupportedDocumentError(
            f"unsupported: {mime or 'unknown type'} ({filename}) needs the document parsers, "
            "which this build does not have yet"
        )
