"""A bound on concurrent answer generations, per generator (``RAGSTACK_API_ANSWERS_*``).

``limit`` answers of a generator run at once and ``queue`` more wait for a slot (on the event
loop: a waiting request holds no worker thread); past that a request is refused at once with
``BusyError`` (503 ``busy`` with Retry-After: the server is saturated, whoever asks). A slot is a
``Lease`` that the work itself releases when it really ends -- a request that timed out or whose
client left sets its ``Cancel``, and its worker thread releases the slot once it has stopped --
so the bound counts running work, not open requests. Per process: N API processes run N times
as many.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ragstack.errors import BusyError
from ragstack.generation.base import Cancel

T = TypeVar("T")


class Lease:
    """One slot, held until ``release`` (idempotent; from any thread)."""

    def __init__(self, slots: Slots) -> None:
        self._slots: Slots | None = slots
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def release(self) -> None:
        with self._lock:
            slots, self._slots = self._slots, None
        if slots is not None:
            slots._release(time.monotonic() - self.started)

    @property
    def held(self) -> bool:
        return self._slots is not None


@dataclass(frozen=True)
class SlotFigures:
    limit: int
    queue: int
    running: int
    waiting: int
    refused: int


class Slots:
    """``limit`` concurrent holders, ``queue`` waiters, first come first served."""

    def __init__(self, name: str, limit: int, queue: int) -> None:
        if limit < 1 or queue < 0:
            raise ValueError("a generator needs at least one slot and a queue of zero or more")
        self.name, self.limit, self.queue = name, limit, queue
        self._lock = threading.Lock()
        self._running = 0
        self._refused = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._mean_s = 1.0  # a moving average of how long a generation holds its slot

    def figures(self) -> SlotFigures:
        with self._lock:
            return SlotFigures(self.limit, self.queue, self._running, len(self._waiters),
                               self._refused)  # fmt: skip

    async def acquire(self) -> Lease:
        """A lease on a free slot; waits in the queue when none is free; ``BusyError`` when
        the queue is full too."""
        with self._lock:
            if self._running < self.limit and not self._waiters:
                self._running += 1
                return Lease(self)
            if len(self._waiters) >= self.queue:
                self._refused += 1
                retry = self._mean_s * (1 + len(self._waiters)) / self.limit
                raise BusyError(
                    f"every {self.name} generation slot is taken ({self.limit} running, "
                    f"{len(self._waiters)} waiting): try again shortly",
                    retry,
                )
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            entry = (loop, waiter)
            self._waiters.append(entry)
        try:
            await waiter  # _release hands its slot over: _running stays as it is
        except BaseException:  # cancelled while waiting (timeout, client gone)
            with self._lock:
                queued = entry in self._waiters
                if queued:
                    self._waiters.remove(entry)
            if not queued:  # the slot was handed over meanwhile: pass it on
                self._release(None)
            raise
        return Lease(self)

    def _release(self, held_s: float | None) -> None:
        with self._lock:
            if held_s is not None:
                self._mean_s = 0.8 * self._mean_s + 0.2 * held_s
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if loop.is_closed():
                    continue
                loop.call_soon_threadsafe(_wake, waiter)
                return
            self._running -= 1


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Generations:
    """The ``Slots`` of every generator."""

    def __init__(self, limits: dict[str, int], queue: int) -> None:
        self._slots = {name: Slots(name, n, queue) for name, n in limits.items()}

    def slots(self, name: str) -> Slots:
        return self._slots[name]

    def figures(self) -> dict[str, SlotFigures]:
        return {name: s.figures() for name, s in self._slots.items()}


class Leased(Iterator[T]):
    """An answer's event stream that holds its generator slot: released when the stream ends,
    fails, is closed or is dropped. ``stop`` sets the work's ``Cancel`` and closes the stream;
    a close from another thread while a ``next`` runs is done by that ``next`` when it returns
    (a generator cannot be closed while it runs)."""

    def __init__(
        self,
        events: Iterator[T],
        lease: Lease,
        cancel: Cancel,
        *,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        """``on_finish`` runs once, when the stream is done with (ended, failed or closed)."""
        self._events, self._lease, self._cancel = events, lease, cancel
        self._on_finish = on_finish
        self._lock = threading.Lock()
        self._busy = self._closing = self._closed = False

    def __next__(self) -> T:
        with self._lock:
            if self._closed:
                raise StopIteration
            self._busy = True
        try:
            return next(self._events)
        except BaseException:
            self._closing = True
            raise
        finally:
            with self._lock:
                self._busy = False
                closing = self._closing
            if closing:
                self._finish()

    def stop(self) -> None:
        self._cancel.set()
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._busy:
                self._closing = True
                return
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            self._lease.release()
            if self._on_finish is not None:
                self._on_finish()

    def __del__(self) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):  # nowhere to report to from a finalizer
                self._finish()


class StoppableStream(StreamingResponse):
    """A streamed response that calls ``stop`` as soon as its client disconnects (before the
    event in flight is finished), and again when the response ends however it ends."""

    def __init__(self, content: Iterator[str], stop: Callable[[], None], media_type: str) -> None:
        super().__init__(content, media_type=media_type)
        self.stop = stop

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        self.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stop()
