"""``parse``: any supported document to a ``ParsedDocument``, or one of our typed errors.

Every failure is an ``InputError`` whose message starts with its reason, so that ingest can
record it: ``unsupported:`` (``UnsupportedDocumentError``), ``too large:``
(``DocumentTooLargeError``), ``password-protected:``, ``corrupt:`` or ``empty:``
(``ParseError``).
"""

from __future__ import annotations

from ragstack.errors import DocumentTooLargeError, ParseError
from ragstack.parsing.formats import Format, detect_format
from ragstack.parsing.model import ParsedDocument, assemble
from ragstack.parsing.readers import (
    ReadResult,
    read_mail,
    read_markup,
    read_office,
    read_pdf,
    read_text,
)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class DocumentParser:
    """Parses documents offline. Cheap to construct; unstructured and spaCy load on the
    first document that needs them (call ``warm_up`` to load them now)."""

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def warm_up(self) -> None:
        from ragstack.parsing.offline import prepare_unstructured

        prepare_unstructured()
        import unstructured.nlp.tokenize as tokenize

        tokenize._get_nlp()

    def parse(self, data: bytes, *, filename: str, mime: str | None) -> ParsedDocument:
        if len(data) > self.max_bytes:
            raise DocumentTooLargeError(
                f"too large: {filename} is {len(data):,} bytes, over the limit of "
                f"{self.max_bytes:,}"
            )
        fmt = detect_format(data, filename=filename, mime=mime)
        if not data.strip():
            raise ParseError(f"empty: {filename} has no content")
        result = self._read(fmt, data, filename)
        document = assemble(result.blocks, format=fmt, title=result.title, pages=result.pages)
        if not document.text.strip():
            raise ParseError(f"empty: no text found in {filename}")
        return document

    @staticmethod
    def _read(fmt: Format, data: bytes, filename: str) -> ReadResult:
        if fmt in ("text", "markdown"):
            return read_text(data, filename, markdown=fmt == "markdown")
        if fmt == "pdf":
            return read_pdf(data, filename)
        if fmt in ("eml", "msg"):
            return read_mail(data, filename, fmt)
        if fmt in ("html", "xml", "csv", "tsv", "rst", "org"):
            return read_markup(data, filename, fmt)
        return read_office(data, filename, fmt)


def parse(
    data: bytes,
    *,
    filename: str,
    mime: str | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ParsedDocument:
    """Parse one document (see ``DocumentParser``)."""
    return DocumentParser(max_bytes=max_bytes).parse(data, filename=filename, mime=mime)
