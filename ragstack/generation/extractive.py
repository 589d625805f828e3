"""The generator that needs no model: the sentences of the sources that best answer the
question, each cited. The default, because it always works and never invents anything.

A sentence's score is its embedding cosine to the question plus ``lexical_weight`` times the
share of the question's content words it contains. Up to ``max_sentences`` sentences scoring
at least ``min_score`` and at least ``relative_min`` times the best score are returned, best first,
each followed by ``[n]``; when none reaches ``min_score`` the answer is ``NOT_SUPPORTED``.

A question of several parts (``ragstack.questions.split_question``: "How many days do I get,
and how many can I carry over?") is answered part by part: for each, the best sentence scored
against that part (its own words, with the context an earlier part lends it) and not quoted for
another part, when it reaches ``part_min_score``; else the answer says which part the sources do
not answer (``PART_NOT_SUPPORTED``). Only when no part is supported is the answer
``NOT_SUPPORTED``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexes.analysis import Analyzer
from ragstack.compression import EmbedFn, split_sentences
from ragstack.generation.base import (
    Cancel,
    EventStream,
    Source,
    TextDelta,
    TokenCounter,
    Usage,
    check,
)
from ragstack.generation.prompt import NOT_SUPPORTED, PART_NOT_SUPPORTED
from ragstack.questions import Part, split_question


class ExtractiveGenerator:
    name = "extractive"

    def __init__(
        self,
        embed: EmbedFn,
        count_tokens: TokenCounter,
        *,
        model_id: str = "extractive",
        max_sentences: int = 3,
        min_score: float = 0.75,
        lexical_weight: float = 0.3,
        relative_min: float = 0.5,
        part_min_score: float | None = None,
    ) -> None:
        self.embed = embed
        self._count = count_tokens
        self.model_id = model_id
        self.max_sentences = max_sentences
        self.min_score = min_score
        self.lexical_weight = lexical_weight
        self.relative_min = relative_min
        self.part_min_score = min_score if part_min_score is None else part_min_score
        self.analyzer = Analyzer()

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def context_window(self) -> int:
        return 1 << 20

    def score(
        self, question: str, sources: Sequence[Source], words: Sequence[str] | None = None
    ) -> list[tuple[float, int, str]]:
        """``(score, source number, sentence)`` of every sentence of the sources, best first
        (``words``: the content words whose share counts; default the question's)."""
        found = [(s.number, s.text[a:b]) for s in sources for a, b in split_sentences(s.text)]
        if not found:
            return []
        vectors = self.embed([question, *(t for _, t in found)])
        wanted = set(words if words is not None else self.analyzer(question))
        scores = vectors[1:] @ vectors[0]
        if wanted:
            overlap = [len(wanted & set(self.analyzer(t))) / len(wanted) for _, t in found]
            scores = scores + self.lexical_weight * np.asarray(overlap, dtype=np.float32)
        order = np.argsort(-scores, kind="stable").tolist()
        return [(float(scores[i]), found[i][0], found[i][1]) for i in order]

    def select(self, question: str, sources: Sequence[Source]) -> list[tuple[float, int, str]]:
        """``(score, source number, sentence)`` of the chosen sentences, best first."""
        return choose(
            self.score(question, sources),
            min_score=self.min_score,
            relative_min=self.relative_min,
            max_sentences=self.max_sentences,
        )

    def by_part(self, parts: Sequence[Part], sources: Sequence[Source]) -> list[str]:
        """For each part, its best-supported sentence (cited) or the sentence saying the
        sources do not answer it; ``[]`` when no part is supported."""
        lines: list[str] = []
        quoted: set[str] = set()
        answered = 0
        for part in parts:
            pick = next(
                ((n, s) for score, n, s in self.score(part.query, sources, part.words)
                 if score >= self.part_min_score and _key(s) not in quoted),
                None,
            )  # fmt: skip
            if pick is None:
                lines.append(PART_NOT_SUPPORTED.format(part=part.text))
                continue
            quoted.add(_key(pick[1]))
            lines.append(_cited(pick[1], pick[0]))
            answered += 1
        return lines if answered else []

    def stream(
        self,
        question: str,
        sources: Sequence[Source],
        *,
        max_tokens: int = 256,
        cancel: Cancel | None = None,
    ) -> EventStream:
        check(cancel)
        parts = split_question(question, analyzer=self.analyzer)
        if len(parts) > 1:
            lines = self.by_part(parts, sources)
        else:
            lines = [_cited(s, n) for _score, n, s in self.select(question, sources)]
        answer = " ".join(lines) if lines else NOT_SUPPORTED
        for i, piece in enumerate(answer.split(" ")):
            yield TextDelta(piece if i == 0 else " " + piece)
        prompt = self._count(question) + sum(self._count(s.text) for s in sources)
        yield Usage(prompt, self._count(answer), self.model_id)


def _key(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def _cited(sentence: str, number: int) -> str:
    """The sentence, whitespace folded, with ``[number]`` before its final stop."""
    body = " ".join(sentence.split())
    return f"{body} [{number}]" if body[-1:] not in ".!?" else f"{body[:-1]} [{number}]{body[-1]}"


def choose(
    scored: Sequence[tuple[float, int, str]],
    *,
    min_score: float,
    relative_min: float,
    max_sentences: int,
) -> list[tuple[float, int, str]]:
    """The sentences to quote from ``scored`` (best first): at least ``min_score`` and
    ``relative_min`` of the best, no repeats, at most ``max_sentences``."""
    if not scored:
        return []
    floor = max(min_score, relative_min * scored[0][0])
    chosen: list[tuple[float, int, str]] = []
    seen: set[str] = set()
    for score, number, sentence in scored:
        if score < floor or len(chosen) == max_sentences:
            break
        key = _key(sentence)
        if key not in seen:
            seen.add(key)
            chosen.append((score, number, sentence))
    return chosen
