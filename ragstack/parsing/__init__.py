"""Document parsing, offline: bytes in, text with structure out.

``parse(data, filename=..., mime=...)`` returns a ``ParsedDocument``: the full text, and its
elements (title, paragraph, list item, table, code, caption) with page, section path,
character span in that text and whether OCR read them. Office, web, e-mail and e-book formats
go through unstructured (no network: see ``ragstack.parsing.offline``), their tables as
Markdown tables (``tables``); PDFs through PDFium in reading order with ruled tables from
pdfplumber (``pdf``, ``layout``); images, scanned pages and pictures through Tesseract
(``ocr``, ``images``, ``grid``); plain text and Markdown through a fast reader of our own.
What cannot be parsed raises ``UnsupportedDocumentError`` or ``ParseError`` with the reason
first (``unsupported:``, ``password-protected:``, ``corrupt:``, ``empty:``, ``no-text:``,
``ocr-unavailable:``, ``ocr-language-missing:``), and oversized input
``DocumentTooLargeError``.

Importing this package is cheap: unstructured, spaCy, PDFium, pdfplumber and pytesseract load
on the first document that needs them.
"""

from ragstack.parsing.formats import Format, detect_format
from ragstack.parsing.model import ELEMENT_SEPARATOR, Element, ElementKind, ParsedDocument
from ragstack.parsing.parser import DEFAULT_MAX_BYTES, DocumentParser, parse
from ragstack.parsing.text import decode_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ELEMENT_SEPARATOR",
    "DocumentParser",
    "Element",
    "ElementKind",
    "Format",
    "ParsedDocument",
    "decode_text",
    "detect_format",
    "parse",
]
