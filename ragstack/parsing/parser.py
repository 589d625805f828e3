"""``parse``: any supported document to a ``ParsedDocument``, or one of our typed errors.

Every failure is an ``InputError`` whose message starts with its reason, so that ingest can
record it: ``unsupported:`` (``UnsupportedDocumentError``), ``too large:``
(``DocumentTooLargeError``), ``password-protected:``, ``corrupt:``, ``empty:``, ``no-text:``
(an image without text), ``ocr-unavailable:`` or ``ocr-language-missing:`` (``ParseError``).

The parser's settings are part of each document's version (``DocumentParser.tag``): a new
parser version re-parses everything once, and OCR settings re-parse only the documents that
have something for OCR to read.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from ragstack.errors import DocumentTooLargeError, ParseError
from ragstack.parsing.containers import ContainerLimits, check_container
from ragstack.parsing.formats import Format, detect_format
from ragstack.parsing.model import ParsedDocument, assemble
from ragstack.parsing.ocr import Ocr, OcrMode, OcrSettings
from ragstack.parsing.readers import (
    ReadResult,
    read_mail,
    read_markup,
    read_office,
    read_text,
)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
# Bump when a change to parsing changes what documents parse to: every document is parsed
# again on its next ingest. 2: PDFs in reading order through PDFium, tables as Markdown, OCR.
PARSER_VERSION = 2


class DocumentParser:
    """Parses documents offline. Cheap to construct; unstructured and spaCy load on the
    first document that needs them (call ``warm_up`` to load them now)."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ocr: OcrSettings | None = None,
        max_unpacked_bytes: int | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.ocr = Ocr(ocr or OcrSettings())
        self.containers = ContainerLimits(max_unpacked_bytes or 5 * max_bytes)

    def with_ocr_mode(self, mode: OcrMode) -> DocumentParser:
        """The same parser with another OCR mode (a collection's own)."""
        if mode == self.ocr.settings.mode:
            return self
        return DocumentParser(
            max_bytes=self.max_bytes,
            ocr=replace(self.ocr.settings, mode=mode),
            max_unpacked_bytes=self.containers.max_unpacked,
        )

    def tag(self, ocr_inputs: bool) -> str:
        """The parser's part of a document's version. Documents without images or scanned
        pages (``ocr_inputs`` false) get one tag whatever the OCR settings; the others get a
        tag of the OCR settings and engine too, so changing those re-parses them alone."""
        settings = f"parser={PARSER_VERSION}"
        if ocr_inputs:
            engine = self.ocr.engine if self.ocr.settings.mode != "off" else "-"
            settings += ";" + self.ocr.settings.tag(engine)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
        return ("o" if ocr_inputs else "n") + digest

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
        data = check_container(data, filename, fmt, self.containers)  # zip bombs: too_large
        result = self._read(fmt, data, filename)
        document = assemble(
            result.blocks,
            format=fmt,
            title=result.title,
            pages=result.pages,
            ocr=(result.ocr_inputs, result.ocr_pages, result.ocr_seconds),
        )
        if not document.text.strip():
            if result.ocr_pages:
                raise ParseError(f"no-text: OCR found no text in {filename}")
            raise ParseError(f"empty: no text found in {filename}")
        return document

    def _read(self, fmt: Format, data: bytes, filename: str) -> ReadResult:
        if fmt in ("text", "markdown"):
            return read_text(data, filename, markdown=fmt == "markdown")
        if fmt == "pdf":
            from ragstack.parsing.pdf import read_pdf

            pdf = read_pdf(data, filename, self.ocr)
            if not pdf.blocks and not pdf.ocr_inputs:
                raise ParseError(f"empty: {filename} has no text")
            return ReadResult(
                pdf.blocks, pdf.title, pdf.pages, pdf.ocr_inputs, pdf.ocr_pages, pdf.ocr_seconds
            )
        if fmt == "image":
            from ragstack.parsing.images import read_image

            found = read_image(data, filename, self.ocr)
            return ReadResult(found.blocks, "", None, found.inputs, found.pages, found.seconds)
        if fmt in ("eml", "msg"):
            return read_mail(data, filename, fmt)
        if fmt in ("html", "xml", "csv", "tsv", "rst", "org"):
            return read_markup(data, filename, fmt)
        result = read_office(data, filename, fmt)
        if fmt in ("docx", "pptx"):
            from ragstack.parsing.images import office_pictures

            pictures = office_pictures(data, filename, self.ocr)
            result.blocks += pictures.blocks
            result.ocr_inputs = pictures.inputs
            result.ocr_pages, result.ocr_seconds = pictures.pages, pictures.seconds
            if not result.blocks and pictures.failures:
                raise pictures.failures[0]
        return result


def parse(
    data: bytes,
    *,
    filename: str,
    mime: str | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    ocr: OcrSettings | None = None,
) -> ParsedDocument:
    """Parse one document (see ``DocumentParser``)."""
    return DocumentParser(max_bytes=max_bytes, ocr=ocr).parse(data, filename=filename, mime=mime)
