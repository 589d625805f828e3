"""Any OpenAI-compatible chat-completions server (llama.cpp's, vLLM, OpenAI...) over HTTP.

``POST {base_url}/v1/chat/completions`` with ``stream: true``; the server-sent events are read
line by line until ``data: [DONE]``. Usage is asked for with ``stream_options.include_usage``;
a server that does not send it (llama-cpp-python's does not) gets its tokens counted on our
side, and the ``Usage`` says ``estimated=True``.

Failures, as the caller sees them (never with the API key in a message):

    before the first token    connect errors, timeouts, 5xx and 429 are retried ``retries``
                              times with exponential backoff (a 429's or 503's Retry-After is
                              honoured up to ``max_retry_after_s``), then UnavailableError
    after the first token     no retry (the caller already holds part of the answer): a gap of
                              more than ``timeout_s`` between chunks, a dropped connection or a
                              stream cut short is an UnavailableError
    401 / 403 / 404 / 3xx     ConfigError (credentials, base URL or model name are wrong)
    other 4xx                 InputError (the server refused this request, e.g. too long)
    ``cancel`` set            AbortedError, no retry: once the response has started its socket
                              is shut at once (a blocked read returns, the server sees the
                              connection close); before that, at the next step (connect and
                              the wait for headers are bounded by the timeouts)
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ragstack.conversation import MAX_QUERY_CHARS, Turn
from ragstack.errors import AbortedError, ConfigError, InputError, UnavailableError
from ragstack.generation.base import (
    Cancel,
    EventStream,
    Source,
    TextDelta,
    TokenCounter,
    Usage,
    check,
    collect,
)
from ragstack.generation.prompt import ChatMessage, build_condense_messages, build_messages
from ragstack.generation.tokens import default_token_counter

_MAX_BACKOFF_S = 8.0


@dataclass(frozen=True)
class _Retry:
    """A failure before the first token that another attempt may fix."""

    reason: str
    delay_s: float | None = None  # what the server asked for (Retry-After), if anything


class _RetryableError(Exception):
    def __init__(self, retry: _Retry) -> None:
        super().__init__(retry.reason)
        self.retry = retry


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message, if its body is the usual JSON error shape."""
    try:
        body: Any = json.loads(response.read())
    except (ValueError, httpx.HTTPError):
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error", body.get("detail"))
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:300] if message else ""


class OpenAICompatibleGenerator:
    """Streams chat completions from ``base_url`` (with or without a trailing ``/v1``).

    ``extra_body`` adds server-specific request fields, e.g. ``{"repeat_penalty": 1.0}`` for
    llama-cpp-python's server, whose default of 1.1 otherwise differs from the local generator.
    """

    name = "remote"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        temperature: float = 0.0,
        seed: int | None = None,
        context_window: int = 4096,
        tokenizer: TokenCounter | None = None,
        extra_body: Mapping[str, object] | None = None,
        condense_max_tokens: int = 64,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"generator base URL must be http(s)://host[:port], got {base_url!r}")
        root = base_url.rstrip("/")
        root = root.removesuffix("/v1")
        # What messages name: scheme, host and port only (no credentials, no path).
        self.display_url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        if retries < 0 or timeout_s <= 0 or connect_timeout_s <= 0 or backoff_s < 0:
            raise ConfigError("retries and backoff must be >= 0 and timeouts > 0")
        self.model = model
        self.model_id = model
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.seed = seed
        self.extra_body = dict(extra_body or {})
        self.condense_max_tokens = condense_max_tokens
        self._context_window = context_window
        if tokenizer is None:
            self._count, self.tokenizer_name = default_token_counter()
        else:
            self._count, self.tokenizer_name = tokenizer, "custom"
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=root,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleGenerator({self.display_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatibleGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the Generator protocol --------------------------------------------------------------

    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        """Counted locally (see ``ragstack.generation.tokens``), not by the server."""
        return self._count(text)

    def stream(
        self,
        question: str,
        sources: Sequence[Source],
        *,
        max_tokens: int = 256,
        cancel: Cancel | None = None,
    ) -> EventStream:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        messages = build_messages(question, sources)
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.seed is not None:
            payload["seed"] = self.seed
        payload.update(self.extra_body)
        return self._stream(payload, messages, cancel)

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone search query for ``question`` after ``history``, asked of the server
        (a short prompt, at most ``condense_max_tokens``, greedy, retried like an answer).
        Errors are the answer's (``UnavailableError``, ``ConfigError``, ``InputError``); an
        empty or multi-paragraph reply is an ``UnavailableError`` (the caller falls back)."""
        messages = build_condense_messages(question, [(t.role, t.text) for t in history])
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.condense_max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        payload.update(self.extra_body)
        text = collect(self._stream(payload, messages, None)).text.strip().strip("\"'`").strip()
        first = text.split("\n", 1)[0].strip()
        if not first or len(first) > MAX_QUERY_CHARS:
            raise UnavailableError(f"generator at {self.display_url} gave no standalone query")
        return first

    # -- HTTP ----------------------------------------------------------------------------------

    def _unavailable(self, reason: str, attempts: int) -> UnavailableError:
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return UnavailableError(
            f"generator at {self.display_url} is not reachable: {reason}{tries}"
        )

    def _delay(self, retry: _Retry, attempt: int) -> float:
        if retry.delay_s is not None:
            return retry.delay_s
        return float(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))

    def _stream(
        self, payload: dict[str, Any], messages: list[ChatMessage], cancel: Cancel | None
    ) -> EventStream:
        attempt = 0
        while True:
            attempt += 1
            check(cancel)
            reader = _StreamReader()
            try:
                yield from self._attempt(payload, reader, cancel)
            except _RetryableError as exc:
                if cancel is not None and cancel.is_set():  # we shut the connection ourselves
                    raise AbortedError("the answer was cancelled") from exc
                if reader.deltas:  # part of the answer is out: never start it again
                    raise self._broken(exc.retry.reason, reader) from exc
                if attempt > self.retries:
                    raise self._unavailable(exc.retry.reason, attempt) from exc
                delay = self._delay(exc.retry, attempt)
                if delay > self.max_retry_after_s:
                    raise self._unavailable(
                        f"{exc.retry.reason}; it asks to retry after {delay:.0f} s", attempt
                    ) from exc
                if cancel is not None:
                    cancel.wait(delay)
                else:
                    time.sleep(delay)
                continue
            yield self._usage(reader, messages)
            return

    def _broken(self, reason: str, reader: _StreamReader) -> UnavailableError:
        return UnavailableError(
            f"generator at {self.display_url} broke off the answer after "
            f"{reader.deltas} chunks: {reason}"
        )

    def _attempt(
        self, payload: dict[str, Any], reader: _StreamReader, cancel: Cancel | None
    ) -> Iterator[TextDelta]:
        try:
            with self._client.stream("POST", "/v1/chat/completions", json=payload) as response:
                if cancel is None:
                    self._check_status(response)
                    yield from reader.read(response)
                    return
                with cancel.hook(_shutter(response)):
                    self._check_status(response)
                    for delta in reader.read(response):
                        cancel.check()
                        yield delta
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            limit = self._client.timeout.connect if kind == "connect" else self.timeout_s
            raise _RetryableError(_Retry(f"{kind} timeout: no answer within {limit:g} s")) from exc
        except httpx.TransportError as exc:
            raise _RetryableError(_Retry(f"{type(exc).__name__}: {exc}")) from exc

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        phrase = f"HTTP {status} {response.reason_phrase}".strip()
        if status == 429 or status >= 500:
            delay = _retry_after_s(response.headers.get("Retry-After"))
            raise _RetryableError(_Retry(phrase, delay))
        detail = _error_detail(response)
        detail = f": {detail}" if detail else ""
        if status in (401, 403):
            raise ConfigError(f"generator at {self.display_url} refused the credentials ({phrase})")
        if 300 <= status < 400:
            raise ConfigError(f"generator at {self.display_url} redirects elsewhere ({phrase})")
        if status == 404:
            raise ConfigError(
                f"generator at {self.display_url} has no /v1/chat/completions or no model "
                f"{self.model!r} ({phrase}){detail}"
            )
        raise InputError(f"generator at {self.display_url} refused the request ({phrase}){detail}")

    def _usage(self, reader: _StreamReader, messages: list[ChatMessage]) -> Usage:
        if reader.usage is not None:
            prompt, completion = reader.usage
            return Usage(prompt, completion, self.model)
        # OpenAI's accounting for chat: ~3 tokens of framing per message, 3 to prime the reply.
        prompt = sum(self._count(message["content"]) + 3 for message in messages) + 3
        return Usage(prompt, self._count("".join(reader.text)), self.model, estimated=True)


def _shutter(response: httpx.Response) -> Callable[[], None]:
    """Shuts the response's socket (from any thread): a read blocked on it returns at once,
    and the server sees the connection close (closing the file alone does neither)."""

    def shut() -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed by the other side
                sock.shutdown(socket.SHUT_RDWR)

    return shut


class _StreamReader:
    """Reads one SSE response: yields content deltas, keeps usage and progress."""

    def __init__(self) -> None:
        self.deltas = 0
        self.text: list[str] = []
        self.usage: tuple[int, int] | None = None
        self.finished = False

    def read(self, response: httpx.Response) -> Iterator[TextDelta]:
        data: list[str] = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:  # a blank line ends an event
                event, data = "\n".join(data), []
                if event.strip() == "[DONE]":
                    self.finished = True
                    return
                yield from self._chunk(event)
            # other fields ("event:", "id:", ": ping" comments) carry nothing we use
        if data and "\n".join(data).strip() != "[DONE]":
            yield from self._chunk("\n".join(data))
        elif data:
            self.finished = True
        if not self.finished:
            raise _RetryableError(_Retry("the stream ended before the answer was complete"))

    def _chunk(self, event: str) -> Iterator[TextDelta]:
        try:
            chunk: Any = json.loads(event)
        except ValueError as exc:
            raise _RetryableError(
                _Retry(f"malformed event from the server: {event[:80]!r}")
            ) from exc
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise _RetryableError(_Retry(f"the server reported an error: {str(message)[:200]}"))
        usage = chunk.get("usage")
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            self.usage = (int(usage["prompt_tokens"]), int(usage.get("completion_tokens", 0)))
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self.deltas += 1
                self.text.append(content)
                yield TextDelta(content)
            if choice.get("finish_reason"):
                self.finished = True
