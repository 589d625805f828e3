"""BEIR corpora: ``corpus.jsonl``, one ``{"_id", "title", "text"}`` JSON object a line.

One document per line: ``uri = beir://<dataset>/<_id>``, mime ``text/markdown``, the bytes are
``"# " + title + "\\n\\n" + text`` (just ``text`` without a title), ``version`` their SHA-256.
The title is a Markdown heading so that every chunk of a long record carries it as its section
context (what retrieval sees), not only the first one.
Scalar values of an optional ``metadata`` object become item metadata. A line that is not
valid UTF-8 or JSON, lacks ``_id``/``text`` or repeats an ``_id`` becomes a ``bad_record``
ScanError naming the line number (its URI is the document's when the ``_id`` could be read,
so a consumer keeps the last good version, else ``<file URI>#line=N``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

from connectors.base import (
    ErrorKind,
    InMemory,
    MetaValue,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    content_version,
)


class _BadLineError(ValueError):
    def __init__(self, reason: str, doc_id: str | None = None) -> None:
        super().__init__(reason)
        self.doc_id = doc_id


class BeirConnector:
    """A BEIR folder (holding ``corpus.jsonl``) or a corpus ``.jsonl`` file."""

    def __init__(self, path: Path, *, dataset: str | None = None) -> None:
        path = Path(path)
        self.corpus = (path / "corpus.jsonl" if path.is_dir() else path).absolute()
        if not self.corpus.is_file():
            raise SourceUnavailableError(f"no BEIR corpus at {path} (expected corpus.jsonl)")
        self.dataset = dataset or self.corpus.parent.name
        self.name = f"beir:{self.corpus.resolve()}"

    def count(self) -> int:
        """Non-blank lines: the number of items a scan yields (documents plus bad lines)."""
        with self.corpus.open("rb") as fh:
            return sum(1 for line in fh if line.strip())

    def scan(self) -> Iterator[SourceItem | ScanError]:
        first_line: dict[str, int] = {}
        with self.corpus.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    doc_id, title, text, meta = _record(raw)
                    if doc_id in first_line:
                        raise _BadLineError(
                            f"duplicate _id {doc_id!r} (first on line {first_line[doc_id]})"
                        )
                except _BadLineError as exc:
                    uri = self._uri(exc.doc_id) if exc.doc_id is not None else None
                    yield ScanError(
                        uri or f"{self.corpus.as_uri()}#line={lineno}",
                        ErrorKind.BAD_RECORD,
                        f"line {lineno} of {self.corpus.name}: {exc}",
                    )
                    continue
                first_line[doc_id] = lineno
                data = (f"# {title}\n\n{text}" if title else text).encode("utf-8")
                yield SourceItem(
                    source=self.name,
                    uri=self._uri(doc_id),
                    version=content_version(data),
                    title=title,
                    mime="text/markdown",
                    reader=InMemory(data),
                    metadata={**meta, "beir_id": doc_id},
                    size=len(data),
                )

    def _uri(self, doc_id: str) -> str:
        return f"beir://{quote(self.dataset, safe='')}/{quote(doc_id, safe='')}"


def _record(raw: bytes) -> tuple[str, str, str, dict[str, MetaValue]]:
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _BadLineError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise _BadLineError(f"not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(row, dict):
        raise _BadLineError("not a JSON object")
    doc_id = row.get("_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or str(doc_id) == "":
        raise _BadLineError("no usable '_id' (a non-empty string or integer)")
    doc_id = str(doc_id)
    title = row.get("title") or ""
    text = row.get("text")
    if not isinstance(text, str):
        raise _BadLineError("'text' is missing or not a string", doc_id)
    if not isinstance(title, str):
        raise _BadLineError("'title' is not a string", doc_id)
    meta: dict[str, MetaValue] = {}
    extra = row.get("metadata")
    if isinstance(extra, Mapping):
        for k, v in extra.items():
            if isinstance(v, str | int | float | bool):
                meta[str(k)] = v
    return doc_id, title, text, meta
