"""Format readers: bytes of one format to blocks, through unstructured (offline) or our own
code where that is faster or more robust (plain text and Markdown, e-mail fallback), with
pre-checks for what unstructured would silently turn into an empty result (encrypted PDFs,
office files and e-mails)."""

from __future__ import annotations

import email
import email.policy
import importlib
import io
import shutil
import threading
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from typing import Any

from ragstack.errors import ParseError, UnsupportedDocumentError
from ragstack.extras import install_hint
from ragstack.parsing.formats import Format
from ragstack.parsing.model import Block, ElementKind
from ragstack.parsing.offline import prepare_unstructured
from ragstack.parsing.tables import html_table_rows, markdown_table
from ragstack.parsing.text import decode_text, plain_blocks

_KINDS: dict[str, ElementKind] = {
    "Title": "title",
    "NarrativeText": "paragraph",
    "Text": "paragraph",
    "UncategorizedText": "paragraph",
    "Address": "paragraph",
    "EmailAddress": "paragraph",
    "Formula": "paragraph",
    "CompositeElement": "paragraph",
    "ListItem": "list_item",
    "Table": "table",
    "TableChunk": "table",
    "CodeSnippet": "code",
    "FigureCaption": "caption",
}
# Header, Footer, PageNumber, PageBreak (layout furniture), Image (alt text), FormKeysValues
# and anything new are left out.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_MAIL = ("multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")


class ReadResult:
    def __init__(
        self,
        blocks: list[Block],
        title: str = "",
        pages: int | None = None,
        ocr_inputs: int = 0,
        ocr_pages: int = 0,
        ocr_seconds: float = 0.0,
    ) -> None:
        self.blocks = blocks
        self.title = title
        self.pages = pages
        self.ocr_inputs = ocr_inputs  # images and scanned pages OCR reads (or would)
        self.ocr_pages = ocr_pages
        self.ocr_seconds = ocr_seconds


_PARTITIONERS: dict[str, str] = {
    "docx": "docx", "pptx": "pptx", "xlsx": "xlsx", "xls": "xlsx", "epub": "epub", "odt": "odt",
    "rtf": "rtf", "doc": "doc", "ppt": "ppt", "html": "html", "xml": "xml", "csv": "csv",
    "tsv": "tsv", "rst": "rst", "org": "org", "eml": "email", "msg": "msg",
}  # fmt: skip


def partitioner(fmt: Format) -> Callable[..., list[Any]]:
    """unstructured's ``partition_<format>`` (imported on first use, after the offline set-up)."""
    prepare_unstructured()
    name = _PARTITIONERS[fmt]
    try:
        module = importlib.import_module(f"unstructured.partition.{name}")
    except ImportError as exc:
        raise _missing_part(fmt, exc) from exc
    func: Callable[..., list[Any]] = getattr(module, f"partition_{name}")
    return func


def blocks_from_elements(elements: Iterable[Any]) -> list[Block]:
    """Our blocks for unstructured's elements. Page furniture (headers, footers) is left out,
    unless it is all the text there is."""
    blocks: list[Block] = []
    furniture: list[Block] = []
    for el in elements:
        name = type(el).__name__
        kind = _KINDS.get(name)
        text = str(getattr(el, "text", "") or "").strip()
        if not text:
            continue
        page = getattr(el.metadata, "page_number", None)
        if kind is None:
            if name in ("Header", "Footer"):
                furniture.append(Block(text, "paragraph", page))
            continue
        depth = getattr(el.metadata, "category_depth", None) if kind == "title" else None
        if kind == "table":
            html = getattr(el.metadata, "text_as_html", None)
            table = markdown_table(html_table_rows(html)) if html else ""
            text = table if table.count("\n") >= 2 else text
        blocks.append(Block(text, kind, page, depth))
    return blocks or furniture


# unstructured (and the spaCy pipeline it shares) runs one document at a time, so documents
# can be prepared in parallel threads for OCR's sake (``ragstack.ingest.prepare.run_here``)
_UNSTRUCTURED = threading.RLock()


def _missing_part(what: str, exc: ImportError) -> UnsupportedDocumentError:
    """An unsupported document whose reader is an extra that is not installed."""
    first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return UnsupportedDocumentError(
        f"unsupported: {what}: its reader is not installed ({first}); EPUB, ODT, RTF, Org and "
        f"reST documents need the `pandoc` extra: {install_hint('pandoc')}"
    )


def _partition(func: Callable[..., list[Any]], filename: str, **kwargs: Any) -> list[Block]:
    """Runs an unstructured partitioner, turning its many failure types into ours."""
    try:
        with _UNSTRUCTURED:
            elements = func(metadata_filename=filename, languages=["eng"], **kwargs)
    except (ParseError, UnsupportedDocumentError):
        raise
    except ImportError as exc:  # unstructured's "Following dependencies are missing"
        raise _missing_part(filename, exc) from exc
    except FileNotFoundError as exc:
        if "soffice" in str(exc) or "pandoc" in str(exc):
            raise UnsupportedDocumentError(
                f"unsupported: {filename}: converting it needs a program that is not installed "
                f"({str(exc).splitlines()[0][:120]})"
            ) from exc
        raise ParseError(f"corrupt: {filename}: {exc}") from exc
    except Exception as exc:  # unstructured and its parsers raise anything on bad input
        message = str(exc)
        if "password" in message.lower() or "encrypt" in message.lower():
            raise ParseError(f"password-protected: {filename} cannot be opened") from exc
        raise ParseError(
            f"corrupt: {filename} could not be parsed ({type(exc).__name__}: {message[:200]})"
        ) from exc
    return blocks_from_elements(elements)


# -- readers ---------------------------------------------------------------------------------


def read_text(data: bytes, filename: str, *, markdown: bool) -> ReadResult:
    return ReadResult(plain_blocks(decode_text(data), markdown=markdown))


def _check_office_encryption(data: bytes, filename: str) -> None:
    """Encrypted OOXML files are OLE containers, not zips: say so instead of 'corrupt'."""
    if not data.startswith(OLE_MAGIC):
        return
    import msoffcrypto  # type: ignore[import-untyped]  # ships no type information

    try:
        encrypted = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    except Exception as exc:  # msoffcrypto raises its own and stdlib errors on junk
        raise ParseError(f"corrupt: {filename} is not a readable Office file ({exc})") from exc
    if encrypted:
        raise ParseError(f"password-protected: {filename} is encrypted with a password")
    raise UnsupportedDocumentError(
        f"unsupported: {filename} is a legacy binary Office file with a new-format name"
    )


def read_office(data: bytes, filename: str, fmt: Format) -> ReadResult:
    if fmt in ("docx", "pptx", "xlsx"):
        _check_office_encryption(data, filename)
    if fmt in ("doc", "ppt") and shutil.which("soffice") is None:
        raise UnsupportedDocumentError(
            f"unsupported: {filename} is a legacy binary Office file (.{fmt}); converting it "
            "needs LibreOffice (soffice), which is not installed"
        )
    func = partitioner(fmt)
    return ReadResult(_partition(func, filename, file=io.BytesIO(data)))


def read_markup(data: bytes, filename: str, fmt: Format) -> ReadResult:
    """HTML, XML, CSV, TSV, reStructuredText, Org: decoded by us (any encoding), then
    partitioned by unstructured from UTF-8."""
    text = decode_text(data)
    if fmt in ("html", "xml"):
        return ReadResult(_partition(partitioner(fmt), filename, text=text))
    utf8 = io.BytesIO(text.encode("utf-8"))
    if fmt in ("csv", "tsv"):
        try:
            return ReadResult(_partition(partitioner(fmt), filename, file=utf8))
        except ParseError:
            # ragged rows (pandas refuses them): the text is still worth indexing
            return ReadResult(plain_blocks(text, markdown=False))
    return ReadResult(_partition(partitioner(fmt), filename, file=utf8))


def _mail_headers(data: bytes) -> EmailMessage | None:
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
    except Exception:  # the stdlib parser is lenient; anything raised means junk
        return None
    return message if isinstance(message, EmailMessage) else None


def _stdlib_mail_blocks(message: EmailMessage) -> list[Block]:
    """Every text/plain part (text/html stripped by unstructured when there is no plain
    one), including those of forwarded and digest messages."""
    plain: list[str] = []
    html: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            continue
        if not isinstance(content, str):
            continue
        (plain if part.get_content_type() == "text/plain" else html).append(content)
    blocks: list[Block] = []
    for body in plain:
        blocks += plain_blocks(body, markdown=False)
    for body in html if not blocks else []:
        with _UNSTRUCTURED:
            html = partitioner("html")(text=body, languages=["eng"])
        blocks += blocks_from_elements(html)
    return blocks


def read_mail(data: bytes, filename: str, fmt: Format) -> ReadResult:
    if fmt == "msg":
        blocks = _partition(
            partitioner("msg"), filename, file=io.BytesIO(data), process_attachments=False
        )
        if not blocks and any(
            marker.encode(enc) in data
            for marker in ("pgp-encrypted", "pkcs7-mime", "smime.p7m")
            for enc in ("ascii", "utf-16-le")
        ):
            raise ParseError(f"password-protected: {filename} is an encrypted e-mail")
        return ReadResult(blocks)
    message = _mail_headers(data)
    subject = str(message.get("subject", "") or "") if message is not None else ""
    if message is not None and message.get_content_type() in _ENCRYPTED_MAIL:
        raise ParseError(f"password-protected: {filename} is an encrypted e-mail (PGP/S-MIME)")
    try:
        blocks = _partition(
            partitioner("eml"), filename, file=io.BytesIO(data), process_attachments=False
        )
    except ParseError:
        if message is None:
            raise
        blocks = _stdlib_mail_blocks(message)  # e.g. digests, which unstructured rejects
    if not blocks and message is not None:
        blocks = _stdlib_mail_blocks(message)
    return ReadResult(blocks, subject)
