"""The parts of a multi-part question.

"How many days of paid annual leave do I get, and how many can I carry over?" asks two things.
``split_question`` finds them: several question sentences ("What is X? Who approves it?"), and
clauses coordinated before a question word or an auxiliary ("..., and how many ...", "... and
when ...", "...; who ..."). A part that leans on an earlier one ("how many can I carry over"
has no noun of its own) gets that part's content words as context for retrieval and scoring
(``Part.query``), while its own words (``Part.words``) stay what must be matched. A question
with one part comes back as one part: everything downstream behaves as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexes.analysis import Analyzer

_QUESTION_WORDS = (
    "how|what|when|where|who|whom|whose|which|why|whether|is|are|was|were|do|does|did|can|"
    "could|should|will|would|may|might|must|has|have|had|shall"
)
# a clause boundary: ", and how", " and what", "; who", ", but when", " as well as how"
_COORDINATED = re.compile(
    rf"(?:\s*[;,]\s*(?:and|but|also|plus|or)?|\s+(?:and|but|also|plus|as well as))\s+"
    rf"(?=(?:also\s+)?(?:{_QUESTION_WORDS})\b)",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^?]+\?|[^?]+$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# words that carry no subject of their own: question words, pronouns, light verbs
_LIGHT = frozenset(
    f"{_QUESTION_WORDS.replace('|', ' ')} i me my we our you your it its they them their this "
    "that these those one ones there get gets got much many long often also and or but then "
    "any some the a an of to in on for with about at by from as be been being".split()
)
_MAX_PARTS = 4
_CONTEXT = re.compile(r"^(.*\S)\s*\(([^()]*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Part:
    text: str  # as asked
    query: str  # with the context an earlier part lends it (for retrieval and scoring)
    words: tuple[str, ...]  # its own content words


def _content(text: str, analyzer: Analyzer) -> list[str]:
    """The content words of ``text`` as written (no question words, pronouns, stopwords)."""
    return [w for w in _WORD.findall(text) if w.lower() not in _LIGHT and analyzer(w)]


def split_question(question: str, *, analyzer: Analyzer | None = None) -> list[Part]:
    """The parts of ``question`` (one part when it asks one thing; at most four)."""
    analyzer = analyzer or Analyzer()
    # a trailing "(...)" is context (what a follow-up's rewrite appends), never a part
    context = _CONTEXT.match(question.strip())
    asked, extra = (context.group(1), context.group(2)) if context else (question.strip(), "")
    pieces: list[str] = []
    for sentence in _SENTENCE.findall(asked):
        for clause in _COORDINATED.split(sentence):
            clause = clause.strip(" ,;")
            if clause:
                pieces.append(clause if clause.endswith("?") else clause.rstrip(".") + "?")
    # a fragment with no content word of its own and no question word is no part
    merged: list[str] = []
    for piece in pieces:
        asks = re.match(rf"(?:{_QUESTION_WORDS})\b", piece, re.IGNORECASE) is not None
        if merged and not asks and not _content(piece, analyzer):
            merged[-1] = merged[-1].rstrip("?") + " " + piece
        else:
            merged.append(piece)
    if len(merged) <= 1 or len(merged) > _MAX_PARTS:
        words = tuple(analyzer(" ".join(_content(question, analyzer))))
        return [Part(question.strip(), question.strip(), words)]
    parts = []
    first = _content(merged[0], analyzer)
    for i, text in enumerate(merged):
        own = _content(text, analyzer)
        mine = {w.lower() for w in own}
        lend = [w for w in first if w.lower() not in mine] if i and len(own) < 3 else []
        lent = " ".join(w for w in (" ".join(dict.fromkeys(lend)), extra) if w)
        query = f"{text} ({lent})" if lent else text
        parts.append(Part(text, query, tuple(analyzer(" ".join(own)))))
    return parts
