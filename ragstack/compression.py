"""Context compression: keep the sentences of the top chunks that carry the answer.

Every sentence of the retrieved chunks is scored against the question (cosine of the
embedder's vectors, plus the share of the question's content words it contains, plus a small
prior for the chunk's rank), near-duplicates are dropped (a sentence too close to one already
kept), and the best are kept until a token budget, counted with the generator's own
tokenizer, is full. Kept sentences go back to their chunk in document order: each chunk that
keeps anything becomes one numbered source. Every kept sentence keeps its chunk id and its
character span in the document text, so citations survive compression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from indexes.analysis import Analyzer
from ragstack.search import Hit

F32 = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str]], F32]

_ABBREVIATIONS = (
    "e.g", "i.e", "et al", "vs", "fig", "figs", "eq", "ref", "refs", "no", "dr", "mr", "mrs",
    "ms", "prof", "inc", "ltd", "approx", "cf", "resp", "st", "vol", "pp", "ca",
)  # fmt: skip
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[-*•]\s)")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (whitespace trimmed, none empty)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        before = text[start : m.start()].rstrip()
        word = before.rsplit(None, 1)[-1].lower().strip(".([{\"'") if before.split() else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue  # "et al. Smith", "J. Smith": not a boundary
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class Sentence:
    text: str
    chunk_id: int
    char_start: int  # in the document's text
    char_end: int
    score: float


@dataclass(frozen=True)
class ContextSource:
    """One numbered source: a chunk's kept sentences, in document order."""

    number: int
    hit: Hit
    sentences: tuple[Sentence, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


@dataclass(frozen=True)
class Context:
    sources: tuple[ContextSource, ...]
    tokens_before: int
    tokens_after: int
    sentences_considered: int
    duplicates_dropped: int


class Compressor:
    def __init__(
        self,
        embed: EmbedFn,
        count_tokens: Callable[[str], int],
        *,
        budget_tokens: int = 1024,
        duplicate_cosine: float = 0.92,
        lexical_weight: float = 0.3,
        rank_weight: float = 0.05,
        min_score: float = 0.0,
    ) -> None:
        self.embed = embed
        self.count_tokens = count_tokens
        self.budget_tokens = budget_tokens
        self.duplicate_cosine = duplicate_cosine
        self.lexical_weight = lexical_weight
        self.rank_weight = rank_weight
        self.min_score = min_score
        self.analyzer = Analyzer()

    def _lexical(self, question: str, sentences: Sequence[str]) -> F32:
        wanted = set(self.analyzer(question))
        if not wanted:
            return np.zeros(len(sentences), dtype=np.float32)
        return np.array(
            [len(wanted & set(self.analyzer(s))) / len(wanted) for s in sentences],
            dtype=np.float32,
        )

    def compress(self, question: str, hits: Sequence[Hit], queries: Sequence[str] = ()) -> Context:
        """The context for ``question`` from ``hits``; with ``queries`` (the parts of a
        multi-part question), each sentence is scored by the query it matches best."""
        pieces: list[tuple[int, Hit, int, int]] = []  # (rank, hit, start, end) within hit.text
        for rank, hit in enumerate(hits):
            for a, b in split_sentences(hit.text):
                pieces.append((rank, hit, a, b))
        tokens_before = sum(self.count_tokens(h.text) for h in hits)
        if not pieces:
            return Context((), tokens_before, 0, 0, 0)
        texts = [hit.text[a:b] for _, hit, a, b in pieces]
        asked = list(queries) or [question]
        vectors = self.embed([*asked, *texts])
        qv, sv = vectors[: len(asked)], vectors[len(asked) :]
        ranks = np.array([r for r, *_ in pieces], dtype=np.float32)
        scores = np.max(
            [
                sv @ q + self.lexical_weight * self._lexical(a, texts)
                for a, q in zip(asked, qv, strict=True)
            ],
            axis=0,
        )
        scores += self.rank_weight / (1.0 + ranks)
        kept: list[int] = []
        duplicates = 0
        used = 0
        for i in np.argsort(-scores, kind="stable").tolist():
            if scores[i] < self.min_score:
                break
            if kept and float(np.max(sv[kept] @ sv[i])) >= self.duplicate_cosine:
                duplicates += 1
                continue
            cost = self.count_tokens(texts[i]) + 1
            if used + cost > self.budget_tokens:
                if used:
                    continue  # a shorter sentence may still fit
                cost = min(cost, self.budget_tokens)  # the single best one always goes in
            kept.append(i)
            used += cost
            if used >= self.budget_tokens:
                break
        by_chunk: dict[int, list[int]] = {}
        for i in kept:
            by_chunk.setdefault(pieces[i][1].chunk_id, []).append(i)
        order = sorted(by_chunk, key=lambda cid: -max(float(scores[i]) for i in by_chunk[cid]))
        sources = []
        for number, cid in enumerate(order, 1):
            idx = sorted(by_chunk[cid], key=lambda i: pieces[i][2])
            hit = pieces[idx[0]][1]
            sentences = tuple(
                Sentence(
                    texts[i],
                    cid,
                    hit.char_start + pieces[i][2],
                    hit.char_start + pieces[i][3],
                    float(scores[i]),
                )
                for i in idx
            )
            sources.append(ContextSource(number, hit, sentences))
        tokens_after = sum(self.count_tokens(s.text) for s in sources)
        return Context(tuple(sources), tokens_before, tokens_after, len(pieces), duplicates)
