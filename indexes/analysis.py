"""Text analysis for BM25: lowercase, accent folding, word tokens, stopwords, Snowball stemming.

The same ``Analyzer`` tokenises documents and queries, and its configuration is stored in
the index manifest so an index is never queried with a different analysis chain.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import Stemmer

from indexes.errors import InvalidInputError

# The NLTK English stopword list (the set bm25s and most BEIR baselines use); a superset of
# Lucene's 33-word EnglishAnalyzer set.
ENGLISH_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "ain",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "couldn",
        "couldn't",
        "d",
        "did",
        "didn",
        "didn't",
        "do",
        "does",
        "doesn",
        "doesn't",
        "doing",
        "don",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "hadn't",
        "has",
        "hasn",
        "hasn't",
        "have",
        "haven",
        "haven't",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "just",
        "ll",
        "m",
        "ma",
        "me",
        "mightn",
        "mightn't",
        "more",
        "most",
        "mustn",
        "mustn't",
        "my",
        "myself",
        "needn",
        "needn't",
        "no",
        "nor",
        "not",
        "now",
        "o",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "re",
        "s",
        "same",
        "shan",
        "shan't",
        "she",
        "she's",
        "should",
        "should've",
        "shouldn",
        "shouldn't",
        "so",
        "some",
        "such",
        "t",
        "than",
        "that",
        "that'll",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "ve",
        "very",
        "was",
        "wasn",
        "wasn't",
        "we",
        "were",
        "weren",
        "weren't",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "won't",
        "wouldn",
        "wouldn't",
        "y",
        "you",
        "you'd",
        "you'll",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class Analyzer:
    """``text -> terms``; ``language`` names a Snowball stemmer (``None`` disables stemming)."""

    language: str | None = "english"
    stopwords: str = "english"  # "english" or "none"
    fold_accents: bool = True
    _stemmer: object = field(init=False, repr=False, compare=False, default=None)
    _stop: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        if self.stopwords not in ("english", "none"):
            raise InvalidInputError(
                f"stopwords must be 'english' or 'none', got {self.stopwords!r}"
            )
        try:
            stemmer = Stemmer.Stemmer(self.language) if self.language else None
        except KeyError as exc:  # PyStemmer's answer to an unknown language
            raise InvalidInputError(f"no Snowball stemmer for {self.language!r}") from exc
        object.__setattr__(self, "_stemmer", stemmer)
        stop = ENGLISH_STOPWORDS if self.stopwords == "english" else frozenset()
        object.__setattr__(self, "_stop", stop)

    def __call__(self, text: str) -> list[str]:
        text = text.lower()
        if self.fold_accents and not text.isascii():
            text = _fold(text)
        stop = self._stop
        tokens = [t for t in _TOKEN.findall(text) if t not in stop]
        if self._stemmer is not None:
            return self._stemmer.stemWords(tokens)  # type: ignore[attr-defined, no-any-return]
        return tokens

    def config(self) -> dict[str, str | bool | None]:
        return {
            "language": self.language,
            "stopwords": self.stopwords,
            "fold_accents": self.fold_accents,
        }
