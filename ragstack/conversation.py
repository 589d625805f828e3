"""Follow-up questions made standalone for retrieval.

In a conversation the last question often leans on the earlier ones: "How much is the
learning budget?" then "and how many days come with it?". Searched alone, the follow-up has
lost its subject. ``standalone`` rewrites it deterministically from the earlier turns:

* a question is a **follow-up** when it opens like one (``and``, ``or``, ``but``, ``also``,
  ``what about``, ``how about``, ``same for``, ``what if``...), refers back (``it``, ``its``,
  ``they``, ``them``, ``their``, ``this``, ``these``, ``those``, ``he``, ``she``...), or has at
  most two content words of its own ("why?", "and for contractors?");
* a follow-up gets the **content words of the previous question** (itself made standalone
  first, so a chain of follow-ups keeps its subject) that it does not already hold, in their
  order, after it in parentheses: "and how many days come with it? (learning budget)";
* "the second one", "the last one" with an enumerated list in the previous answer also
  carries that item's words;
* any other question is left exactly as it is.

A generator that can do better (``Condenser``: the remote OpenAI-compatible one) is asked
for the standalone query instead, with this rewrite as the fallback; the service decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from indexes.analysis import ENGLISH_STOPWORDS

Role = Literal["user", "assistant"]

MAX_CARRIED_WORDS = 16  # of the earlier turns, carried into a follow-up
MAX_QUERY_CHARS = 4096  # what search and answers take
MAX_QUESTION_CHARS = MAX_QUERY_CHARS - 512  # of a chat's question: room for carried words
MAX_HISTORY_TURNS = 20  # the earlier turns a follow-up is made standalone from (the latest)
MAX_TURN_CHARS = 4096  # of each of them


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation."""

    role: Role
    text: str


@runtime_checkable
class Condenser(Protocol):
    """Something that can turn a follow-up into a standalone search query (a remote model)."""

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone query; raises a ``RagstackError`` when it cannot."""
        ...


_WORD = re.compile(r"[^\W_][\w'’\-]*")
_OPENERS = frozenset({"and", "or", "but", "also", "so", "then", "plus", "nor"})
_OPENING_PAIRS = frozenset(
    {"what about", "how about", "same for", "what if", "and for", "and what", "and how"}
)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ANAPHORS = _wordset(
    "it its itself they them their theirs themselves this these those he him his himself "
    "she her hers herself former latter"
)
# Words of a question that name no subject (besides the stopwords).
_FILLER = _wordset(
    "what which who whom whose when where why how whether tell please explain describe know "
    "say says said mean means give show list also many much ok okay thanks thank yes no "
    "one ones get gets got"
)
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "last": -1,
}  # fmt: skip
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+)$", re.MULTILINE)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """The words that carry a subject, in order, each once (case-insensitively)."""
    seen: set[str] = set()
    out: list[str] = []
    for w in words(text):
        key = w.lower().strip("'’-")
        if not key or key in ENGLISH_STOPWORDS or key in _FILLER or key in seen:
            continue
        seen.add(key)
        out.append(w)
    return out


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on what came before it (see the module docstring)."""
    lowered = [w.lower() for w in words(question)]
    if not lowered:
        return True
    if lowered[0] in _OPENERS or " ".join(lowered[:2]) in _OPENING_PAIRS:
        return True
    if any(w in _ANAPHORS for w in lowered):
        return True
    return len(content_words(question)) <= 2


def _list_item(question: str, answer: str | None) -> str:
    """The item of ``answer``'s enumerated list that ``question`` points at by its ordinal."""
    if not answer:
        return ""
    picked = [_ORDINALS[w.lower()] for w in words(question) if w.lower() in _ORDINALS]
    items = _ITEM.findall(answer)
    if not picked or not items:
        return ""
    n = picked[0]
    if n == -1:
        return str(items[-1])
    return str(items[n - 1]) if n <= len(items) else ""


def rewrite(question: str, previous: str, answer: str | None = None) -> str:
    """``question`` made standalone from the ``previous`` (standalone) question and the
    ``answer`` to it; unchanged unless it is a follow-up."""
    if not is_follow_up(question):
        return question
    own = {w.lower() for w in words(question)}
    source = f"{_list_item(question, answer)} {previous}"
    carried = [w for w in content_words(source) if w.lower() not in own][:MAX_CARRIED_WORDS]
    if not carried:
        return question
    room = MAX_QUERY_CHARS - len(question) - 3
    tail = " ".join(carried)
    while carried and len(tail) > room:
        carried.pop()
        tail = " ".join(carried)
    return f"{question} ({tail})" if carried else question


def standalone(question: str, history: Sequence[Turn]) -> str:
    """The last ``question`` of a conversation made standalone from its ``history`` (the
    turns before it, oldest first): each user turn is rewritten from the one before it."""
    previous: str | None = None
    answer: str | None = None
    for turn in history:
        if turn.role == "assistant":
            answer = turn.text
            continue
        previous = turn.text if previous is None else rewrite(turn.text, previous, answer)
        answer = None
    if previous is None:
        return question
    return rewrite(question, previous, answer)
