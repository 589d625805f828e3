"""The generator seam: numbered sources in, a stream of text deltas and one usage record out.

Every backend (extractive, local llama.cpp, a remote OpenAI-compatible server) implements
``Generator``. A stream yields zero or more ``TextDelta`` and then exactly one ``Usage``, last;
``collect`` turns a stream into a ``Completion`` when the caller does not need the pieces.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Source:
    """One numbered source handed to a generator; ``[number]`` in an answer refers to it."""

    number: int  # 1-based
    title: str
    text: str  # already compressed and redacted
    instruction_like: bool = False  # flagged at ingest (ragstack.ingest.safety)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    """Tokens spent on one call. ``estimated`` when the backend did not report them and they
    were counted on our side (a remote server without streamed usage)."""

    prompt_tokens: int
    completion_tokens: int
    model: str
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


GenerationEvent = TextDelta | Usage
# A stream is a generator so that a caller who stops early can ``close()`` it, which frees the
# model (local) or the connection (remote) at once.
EventStream = collections.abc.Generator[GenerationEvent, None, None]


@runtime_checkable
class Generator(Protocol):
    """``name`` is the backend ("local", "remote", "extractive"); ``model_id`` what it runs."""

    name: str
    model_id: str

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by this generator's own tokenizer (for budgets and metrics)."""
        ...

    def context_window(self) -> int:
        """Prompt plus completion tokens the model can attend to."""
        ...

    def stream(
        self, question: str, sources: Sequence[Source], *, max_tokens: int = 256
    ) -> EventStream:
        """Deltas of the answer, then exactly one ``Usage``; ``close()`` it to stop early."""
        ...


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


def collect(events: Iterable[GenerationEvent]) -> Completion:
    """Drain a stream into its full text and its usage; a stream without usage is a bug."""
    parts: list[str] = []
    usage: Usage | None = None
    for event in events:
        if usage is not None:
            raise RuntimeError("generator stream continued after its Usage event")
        if isinstance(event, TextDelta):
            parts.append(event.text)
        else:
            usage = event
    if usage is None:
        raise RuntimeError("generator stream ended without a Usage event")
    return Completion("".join(parts), usage)
