"""The generator that needs no model: the sentences of the sources that best answer the
question, each cited. The default, because it always works and never invents anything.

A sentence's score is its embedding cosine to the question plus ``lexical_weight`` times the
share of the question's content words it contains. Up to ``max_sentences`` sentences scoring
at least ``min_score`` and at least ``relative_min`` times the best score are returned, best first,
each followed by ``[n]``; when none reaches ``min_score`` the answer is ``NOT_SUPPORTED``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexes.analysis import Analyzer
from ragstack.compression import EmbedFn, split_sentences
from ragstack.generation.base import EventStream, Source, TextDelta, TokenCounter, Usage
from ragstack.generation.prompt import NOT_SUPPORTED


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
    ) -> None:
        self.embed = embed
        self._count = count_tokens
        self.model_id = model_id
        self.max_sentences = max_sentences
        self.min_score = min_score
        self.lexical_weight = lexical_weight
        self.relative_min = relative_min
        self.analyzer = Analyzer()

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def context_window(self) -> int:
        return 1 << 20

    def score(self, question: str, sources: Sequence[Source]) -> list[tuple[float, int, str]]:
        """``(score, source number, sentence)`` of every sentence of the sources, best first."""
        found = [(s.number, s.text[a:b]) for s in sources for a, b in split_sentences(s.text)]
        if not found:
            return []
        vectors = self.embed([question, *(t for _, t in found)])
        wanted = set(self.analyzer(question))
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

    def stream(
        self, question: str, sources: Sequence[Source], *, max_tokens: int = 256
    ) -> EventStream:
        chosen = self.select(question, sources)
        if chosen:
            parts = []
            for _score, number, sentence in chosen:
                body = " ".join(sentence.split())
                parts.append(
                    f"{body} [{number}]"
                    if body[-1:] not in ".!?"
                    else f"{body[:-1]} [{number}]{body[-1]}"
                )
            answer = " ".join(parts)
        else:
            answer = NOT_SUPPORTED
        for i, piece in enumerate(answer.split(" ")):
            yield TextDelta(piece if i == 0 else " " + piece)
        prompt = self._count(question) + sum(self._count(s.text) for s in sources)
        yield Usage(prompt, self._count(answer), self.model_id)


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
        key = " ".join(sentence.lower().split())
        if key not in seen:
            seen.add(key)
            chosen.append((score, number, sentence))
    return chosen
