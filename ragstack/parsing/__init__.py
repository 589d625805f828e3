"""Document parsing, offline: bytes in, text with structure out.

``parse(data, filename=..., mime=...)`` returns a ``ParsedDocument``: the full text, and its
elements (title, paragraph, list item, table, code, caption) with page, section path and
character span in that text. Office, web, e-mail, e-book and PDF formats go through
unstructured (no network: see ``ragstack.parsing.offline``); plain text and Markdown through
a fast reader of our own. What cannot be parsed raises ``UnsupportedDocumentError`` or
``ParseError`` with the reason first (``unsupported:``, ``password-protected:``, ``corrupt:``,
``empty:``), and oversized input ``DocumentTooLargeError``.

Importing this package is cheap: unstructured and spaCy load on the first document that
needs them.
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
