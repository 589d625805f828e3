"""Structure-first chunking bounded in the embedder's own tokens.

Input is a document as ``Block``s (already redacted) in reading order, each with its section
path. Output chunks never cross a section, keep the section path as context (it is embedded
and indexed with the chunk, not stored in its text), fit ``max_tokens`` including that context
and the model's special tokens, and repeat up to ``overlap_tokens`` of trailing sentences from
the previous chunk of the same section. Every chunk records its character span in the
document text that is stored, which is what citations point at.

A table (a Markdown table block) is chunked on its own, by rows: a table longer than a chunk
is cut between rows, and every piece after the first carries the table's header row (and its
rule) after the section path as its context, so a cell is always embedded and indexed beside
its column's name while the chunk's text stays one span of the document. Text read by OCR is
never mixed with text from a text layer in one chunk (chunks say which they are).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ragstack.parsing.tables import TABLE_HEADER_LINES, is_markdown_table

BLOCK_SEPARATOR = "\n\n"
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_ROW_END = re.compile(r"\n")


class TokenCounter(Protocol):
    def count(self, texts: Sequence[str]) -> list[int]: ...

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """Character spans of consecutive pieces of ``text`` of at most ``max_tokens`` each."""
        ...


class HfTokenCounter:
    """Counts with a Hugging Face fast tokenizer file (no model load, no torch)."""

    def __init__(self, tokenizer_json: Path, special_tokens: int = 2) -> None:
        from ragstack.embedding import read_tokenizer

        self._tok: Any = read_tokenizer(tokenizer_json)
        self._tok.no_truncation()
        self._tok.no_padding()
        self.special_tokens = special_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        spans = []
        for i in range(0, len(offsets), max_tokens):
            window = offsets[i : i + max_tokens]
            start = window[0][0]
            end = offsets[i + max_tokens][0] if i + max_tokens < len(offsets) else len(text)
            spans.append((start, end))
        return spans or [(0, len(text))]


class WordCounter:
    """Whitespace words as tokens: for embedders without a tokenizer file (tests, hashing)."""

    special_tokens = 0

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        words = [m.span() for m in re.finditer(r"\S+", text)]
        if not words:
            return [(0, len(text))]
        spans = []
        for i in range(0, len(words), max_tokens):
            end = words[i + max_tokens][0] if i + max_tokens < len(words) else len(text)
            spans.append((words[i][0] if i else 0, end))
        return spans


@dataclass(frozen=True)
class Block:
    """One parsed element: a title, paragraph, list item, table..., already redacted."""

    text: str
    kind: str = "paragraph"
    page: int | None = None
    section: tuple[str, ...] = ()
    ocr: bool = False


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    section: str  # "Title > Heading > Subheading" (a table piece: then its header rows)
    page: int | None
    char_start: int  # span in the document text
    char_end: int
    token_count: int  # of the text as embedded (section context + body), special tokens included
    ocr: bool = False  # read by OCR


@dataclass
class _Group:
    """Consecutive blocks chunked together: one section, one origin, or one table."""

    section: tuple[str, ...]
    page: int | None
    ocr: bool
    table: bool
    spans: list[tuple[int, int]]


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def assemble(blocks: Sequence[Block]) -> tuple[str, list[tuple[int, int]]]:
    """The document text (blocks joined by blank lines) and each block's span in it."""
    parts: list[str] = []
    spans = []
    pos = 0
    for b in blocks:
        if parts:
            parts.append(BLOCK_SEPARATOR)
            pos += len(BLOCK_SEPARATOR)
        parts.append(b.text)
        spans.append((pos, pos + len(b.text)))
        pos += len(b.text)
    return "".join(parts), spans


def section_label(section: tuple[str, ...]) -> str:
    return " > ".join(s.strip() for s in section if s.strip())


class Chunker:
    def __init__(self, counter: TokenCounter, *, max_tokens: int, overlap_tokens: int) -> None:
        if overlap_tokens * 2 > max_tokens:
            raise ValueError("overlap must be at most half of max_tokens")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap = overlap_tokens
        self._special = int(getattr(counter, "special_tokens", 0))

    def chunk(self, blocks: Sequence[Block]) -> tuple[str, list[Chunk]]:
        """The document text and its chunks."""
        text, spans = assemble(blocks)
        # Headings stay in the document text but are not chunk bodies: each chunk under one
        # carries it as section context (a document of headings alone is chunked as text).
        bodies = any(b.kind != "title" and b.text.strip() for b in blocks)
        groups: list[_Group] = []
        for block, span in zip(blocks, spans, strict=True):
            if not block.text.strip() or (bodies and block.kind == "title"):
                continue
            table = block.kind == "table" and is_markdown_table(block.text)
            last = groups[-1] if groups else None
            if (
                last is not None
                and not table
                and not last.table
                and (last.section, last.ocr) == (block.section, block.ocr)
            ):
                last.spans.append(span)
            else:
                groups.append(_Group(block.section, block.page, block.ocr, table, [span]))
        chunks: list[Chunk] = []
        labels = [section_label(g.section) for g in groups]
        context_tokens = self.counter.count([f"{label}\n" if label else "" for label in labels])
        for group, label, ctx in zip(groups, labels, context_tokens, strict=True):
            if group.table:
                chunks += self._table(text, group, label, len(chunks))
                continue
            budget = max(8, self.max_tokens - self._special - ctx)
            units = self._units(text, group.spans, budget)
            for start, end, tokens in self._pack(units, budget, self.overlap):
                chunks.append(
                    Chunk(
                        len(chunks),
                        text[start:end],
                        label,
                        group.page,
                        start,
                        end,
                        tokens + ctx + self._special,
                        group.ocr,
                    )
                )
        return text, chunks

    def _table(self, text: str, group: _Group, label: str, first: int) -> list[Chunk]:
        """A table by rows; pieces after the first carry its header rows as context."""
        start, end = group.spans[0]
        rows = text[start:end].split("\n")
        header = "\n".join(rows[:TABLE_HEADER_LINES])
        context = f"{label}\n{header}" if label else header
        ctx_first, ctx_rest = self.counter.count([f"{label}\n" if label else "", f"{context}\n"])
        budget = max(8, self.max_tokens - self._special - ctx_rest)
        spans, pos = [], start
        for row in rows:
            spans.append((pos, pos + len(row)))
            pos += len(row) + 1
        units = self._units(text, spans, budget, _ROW_END)
        out: list[Chunk] = []
        for a, b, tokens in self._pack(units, budget, 0):
            ctx = ctx_first if not out else ctx_rest
            out.append(
                Chunk(
                    first + len(out),
                    text[a:b],
                    label if not out else context,
                    group.page,
                    a,
                    b,
                    tokens + ctx + self._special,
                    group.ocr,
                )
            )
        return out

    def _units(
        self,
        text: str,
        spans: list[tuple[int, int]],
        budget: int,
        boundary: re.Pattern[str] = _SENTENCE_END,
    ) -> list[_Unit]:
        """Sentences (table rows, with ``_ROW_END``), or token windows of over-long ones,
        with their token counts."""
        pieces: list[tuple[int, int]] = []
        for start, end in spans:
            pos = start
            for m in boundary.finditer(text, start, end):
                if m.start() > pos:
                    pieces.append((pos, m.start()))
                pos = m.end()
            if pos < end:
                pieces.append((pos, end))
        counts = self.counter.count([text[a:b] for a, b in pieces])
        units = []
        for (a, b), n in zip(pieces, counts, strict=True):
            if n <= budget:
                units.append(_Unit(a, b, n))
                continue
            for sa, sb in self.counter.split(text[a:b], budget):
                piece = text[a + sa : a + sb].rstrip()
                units.append(_Unit(a + sa, a + sa + len(piece), self.counter.count([piece])[0]))
        return [u for u in units if u.end > u.start]

    def _pack(self, units: list[_Unit], budget: int, overlap: int) -> list[tuple[int, int, int]]:
        out = []
        i = 0
        while i < len(units):
            j, used = i, 0
            while j < len(units) and used + units[j].tokens + (j > i) <= budget:
                used += units[j].tokens + (j > i)  # +1: the joint may add a token
                j += 1
            j = max(j, i + 1)
            out.append((units[i].start, units[j - 1].end, used or units[i].tokens))
            if j >= len(units):
                break
            back, carried = j, 0
            while back - 1 > i and carried + units[back - 1].tokens <= overlap:
                back -= 1
                carried += units[back].tokens
            i = back
        return out
