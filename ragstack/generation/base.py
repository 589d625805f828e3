"""The generator seam: numbered sources in, a stream of text deltas and one usage record out.

Every backend (extractive, local llama.cpp, a remote OpenAI-compatible server) implements
``Generator``. A stream yields zero or more ``TextDelta`` and then exactly one ``Usage``, last;
``collect`` turns a stream into a ``Completion`` when the caller does not need the pieces.

A ``Cancel`` handed to ``stream`` stops it from another thread: the local model between two
tokens, a remote server at once (its connection is shut, so a blocked read returns); the
stream then raises ``AbortedError``.
"""

from __future__ import annotations

import collections.abc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ragstack.errors import AbortedError

log = logging.getLogger("ragstack.generation")

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


class Cancel:
    """A flag one thread sets to stop work another thread does for it (a request that timed out
    or whose client went away). Work checks it between steps (``check``); a step that blocks
    (a network read) registers a callback with ``hook`` that unblocks it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            _quietly(hook)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; ``True`` at once if cancelled meanwhile."""
        return self._event.wait(seconds)

    def check(self) -> None:
        if self._event.is_set():
            raise AbortedError("the request was cancelled: it timed out or its client left")

    @contextmanager
    def hook(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run ``callback`` (once) if cancelled while inside the block; at once if already."""
        with self._lock:
            late = self._event.is_set()
            if not late:
                self._hooks.append(callback)
        if late:
            _quietly(callback)
        try:
            yield
        finally:
            with self._lock:
                if callback in self._hooks:
                    self._hooks.remove(callback)


def _quietly(hook: Callable[[], None]) -> None:
    try:
        hook()
    except Exception as exc:  # a hook must not stop the others (or the caller that cancels)
        log.warning("a cancel hook failed: %s", type(exc).__name__)


def check(cancel: Cancel | None) -> None:
    """``cancel.check()`` when there is a ``cancel``."""
    if cancel is not None:
        cancel.check()


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
        self,
        question: str,
        sources: Sequence[Source],
        *,
        max_tokens: int = 256,
        cancel: Cancel | None = None,
    ) -> EventStream:
        """Deltas of the answer, then exactly one ``Usage``; ``close()`` it to stop early, or
        set ``cancel`` from another thread (the stream then raises ``AbortedError``)."""
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
