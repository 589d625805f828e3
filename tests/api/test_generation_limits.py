"""Bounded, cancellable answer generation.

* ``Slots``: ``limit`` run, ``queue`` wait (and get their turn in order), the rest are refused
  with ``BusyError``; a waiter that gives up passes its turn on.
* The service stops an answer whose ``Cancel`` is set (``AbortedError``).
* Live: the API in a child process with the ``remote`` generator pointed at a slow
  OpenAI-compatible server on loopback (a token every 0.1 s for a minute) and a 1.5 s request
  timeout, one remote slot and no queue. A request that times out (504) or whose client leaves
  mid-stream stops its generation -- the slow server sees its connection closed within a
  second or two, long before its minute -- and the slot is free again; while a stream holds
  the slot, other answers get 503 ``busy`` with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstack.answering import AnswerRequest
from ragstack.api.slots import Slots
from ragstack.app import build
from ragstack.config import Settings
from ragstack.errors import AbortedError, BusyError
from ragstack.generation import Cancel
from ragstack.service import IngestRequest, SourceSpec
from tests.api.conftest import Server, serve

# -- slots ------------------------------------------------------------------------------------


def test_slots_run_queue_and_refuse_in_order() -> None:
    async def scenario() -> list[str]:
        slots = Slots("local", limit=1, queue=2)
        order: list[str] = []
        first = await slots.acquire()

        async def wait(name: str) -> None:
            lease = await slots.acquire()
            order.append(name)
            await asyncio.sleep(0.01)
            lease.release()

        waiters = [asyncio.ensure_future(wait(n)) for n in ("a", "b")]
        await asyncio.sleep(0.01)
        assert slots.figures().running == 1 and slots.figures().waiting == 2
        with pytest.raises(BusyError) as refused:
            await slots.acquire()
        assert refused.value.retry_after > 0 and "1 running, 2 waiting" in str(refused.value)
        first.release()
        first.release()  # idempotent
        await asyncio.gather(*waiters)
        figures = slots.figures()
        assert (figures.running, figures.waiting, figures.refused) == (0, 0, 1)
        return order

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_waiter_cancelled_after_its_turn_came_passes_the_slot_on() -> None:
    async def scenario() -> None:
        slots = Slots("remote", limit=1, queue=2)
        held = await slots.acquire()
        quitter = asyncio.ensure_future(slots.acquire())  # gives up while queued
        await asyncio.sleep(0.01)
        quitter.cancel()
        await asyncio.sleep(0.01)
        assert slots.figures().waiting == 0
        doomed = asyncio.ensure_future(slots.acquire())
        patient = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0.01)
        held.release()  # hands the slot to `doomed`, which is cancelled before it runs
        doomed.cancel()
        lease = await asyncio.wait_for(patient, 1)
        assert slots.figures().running == 1
        lease.release()
        assert slots.figures().running == 0
        released = threading.Thread(target=(await slots.acquire()).release)  # other thread
        released.start()
        released.join()
        assert slots.figures().running == 0

    asyncio.run(scenario())


def test_the_service_stops_a_cancelled_answer(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text("# FAQ\n\nDeploys run every Tuesday after review.\n")
    svc = build(Settings(data_dir=tmp_path / "data", embedder="hashing", principal="user:a"))
    svc.ingest(IngestRequest("kb", [SourceSpec(str(docs))], public=True), principal="user:a")
    cancel = Cancel()
    request = AnswerRequest("kb", "When do deploys run?", ("user:a",), cancel=cancel)
    assert svc.ask(request).answer
    cancel.set()
    with pytest.raises(AbortedError):
        svc.ask(AnswerRequest("kb", "When do deploys run?", ("user:a",), cancel=cancel,
                              use_cache=False))  # fmt: skip


# -- live: a slow generator behind the API ---------------------------------------------------


@dataclass
class Upstream:
    opened: float
    sent: int = 0
    closed: float | None = None


class SlowLlm(ThreadingHTTPServer):
    """An OpenAI-compatible chat server that streams a token every 0.1 s for a minute and
    notes when each connection is closed under it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Slow)
        self.upstreams: list[Upstream] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def closed(self, index: int, timeout: float = 10.0) -> Upstream:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.upstreams) > index and self.upstreams[index].closed is not None:
                return self.upstreams[index]
            time.sleep(0.02)
        raise AssertionError(f"upstream {index} still open: {self.upstreams}")


class _Slow(BaseHTTPRequestHandler):
    server: SlowLlm
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        upstream = Upstream(time.monotonic())
        self.server.upstreams.append(upstream)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for i in range(600):
                chunk = {"choices": [{"index": 0, "delta": {"content": f"word{i} "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                upstream.sent += 1
                time.sleep(0.1)
        except OSError:  # the client went away
            pass
        upstream.closed = time.monotonic()
        self.close_connection = True


@pytest.fixture
def slow_llm() -> Iterator[SlowLlm]:
    server = SlowLlm()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def running(api: Server) -> int:
    text = httpx.get(f"{api.url}/metrics", headers=api.headers, timeout=10).text
    found = re.search(r'ragstack_answer_slots\{generator="remote",state="running"\} (\S+)', text)
    assert found, text
    return int(float(found.group(1)))


def wait_idle(api: Server, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while running(api) != 0:
        assert time.monotonic() - started < timeout, "the generation slot was not released"
        time.sleep(0.05)
    return time.monotonic() - started


def audit_rows(api: Server) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(f"{api.url}/v1/audit?action=answer",
                                           headers=api.headers, timeout=10).json()  # fmt: skip
    return rows


def warm_up(api: Server, headers: dict[str, str], body: dict[str, str]) -> None:
    """The first answer of a fresh process loads the tokenizer and more (seconds, more than
    the short timeout here): streams until one starts, then waits for the slot to be free
    (so every upstream connection it opened is closed)."""
    for _ in range(5):
        with httpx.stream("POST", f"{api.url}/v1/answer", json={**body, "stream": True},
                          headers=headers, timeout=30) as stream:  # fmt: skip
            started = stream.status_code == 200
        wait_idle(api, timeout=30)
        if started:
            return
    raise AssertionError("no answer ever started streaming")


@pytest.mark.slow
def test_timeouts_and_disconnects_stop_the_generation_and_free_the_slot(
    tmp_path: Path, slow_llm: SlowLlm
) -> None:
    env = {
        "RAGSTACK_GENERATOR": "remote",
        "RAGSTACK_REMOTE_URL": slow_llm.url,
        "RAGSTACK_GENERATOR_TIMEOUT_S": "30",
        "RAGSTACK_API_TIMEOUT_S": "2",
        "RAGSTACK_API_ANSWERS_REMOTE": "1",
        "RAGSTACK_API_ANSWER_QUEUE": "0",
        "RAGSTACK_CACHE_ENABLED": "false",
    }
    body = {"collection": "kb", "question": "When do deploys run?"}
    with serve(tmp_path, env=env) as api:
        reader = {"Authorization": f"Bearer {api.keys['reader']}"}
        warm_up(api, reader, body)
        slow_llm.upstreams.clear()
        since = audit_rows(api)[0]["id"]
        # 1. a request that times out: 504, and its generation stops
        r = httpx.post(f"{api.url}/v1/answer", json=body, headers=reader, timeout=30)
        answered = time.monotonic()
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        first = slow_llm.closed(0)
        assert first.closed is not None and first.closed - answered < 2.0, first
        assert first.sent < 40  # of the 600 it would have streamed
        wait_idle(api)

        # 2. a stream holds the one remote slot: other answers are refused as busy
        with httpx.stream("POST", f"{api.url}/v1/answer", json={**body, "stream": True},
                          headers=reader, timeout=30) as stream:  # fmt: skip
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: delta"
            for path, payload in (
                ("/v1/answer", body),
                ("/v1/chat/completions",
                 {"model": "kb", "messages": [{"role": "user", "content": "deploys?"}]}),
            ):  # fmt: skip
                busy = httpx.post(f"{api.url}{path}", json=payload, headers=reader, timeout=30)
                assert busy.status_code == 503, busy.text
                assert busy.json()["error"]["code"] == "busy"
                assert int(busy.headers["Retry-After"]) >= 1
            assert running(api) == 1
            # 3. the client leaves mid-stream
        left = time.monotonic()
        second = slow_llm.closed(1)
        assert second.closed is not None and second.closed - left < 2.0, second
        assert wait_idle(api) < 3.0
        # the slot serves the next answer
        with httpx.stream("POST", f"{api.url}/v1/answer", json={**body, "stream": True},
                          headers=reader, timeout=30) as stream:  # fmt: skip
            assert stream.status_code == 200
            assert any(line == "event: delta" for line in stream.iter_lines())
        slow_llm.closed(2)
        wait_idle(api)
        # audited: three answers aborted (the client left: 499), two refused as busy
        statuses = [row["status"] for row in audit_rows(api) if row["id"] > since]
        assert sorted(statuses) == [499, 499, 499, 503, 503], statuses
