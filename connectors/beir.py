"""BEIR corpora (``corpus.jsonl``: one ``{"_id", "title", "text"}`` object a line)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from connectors.base import ScanError, SourceItem, SourceUnavailableError, constant


class BeirConnector:
    def __init__(self, path: Path) -> None:
        path = Path(path)
        self.corpus = path / "corpus.jsonl" if path.is_dir() else path
        if not self.corpus.is_file():
            raise SourceUnavailableError(f"no BEIR corpus at {path} (expected corpus.jsonl)")
        self.dataset = self.corpus.parent.name
        self.name = f"beir:{self.corpus.resolve()}"

    def count(self) -> int:
        with self.corpus.open("rb") as fh:
            return sum(1 for line in fh if line.strip())

    def scan(self) -> Iterator[SourceItem | ScanError]:
        with self.corpus.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    doc_id, title, text = str(row["_id"]), row.get("title") or "", row["text"]
                    if not isinstance(text, str) or not isinstance(title, str):
                        raise TypeError("title and text must be strings")
                except (ValueError, KeyError, TypeError) as exc:
                    yield ScanError(
                        f"{self.corpus}:{lineno}",
                        "bad_record",
                        f"line {lineno} is not a BEIR record: {exc}",
                    )
                    continue
                body = f"# {title}\n\n{text}" if title else text
                data = body.encode("utf-8")
                yield SourceItem(
                    source=self.name,
                    uri=f"beir://{self.dataset}/{doc_id}",
                    version="sha256:" + hashlib.sha256(data).hexdigest(),
                    title=title,
                    mime="text/markdown",
                    reader=constant(data),
                    metadata={"beir_id": doc_id},
                    size=len(data),
                )
