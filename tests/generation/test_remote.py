"""The OpenAI-compatible generator against real HTTP servers on loopback: llama-cpp-python's own
server (``python -m llama_cpp.server``) on the SmolLM2 GGUF, and a small scripted stdlib server
for the failures a real server will not produce on demand (500, 429, stalls, cut streams).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ragstack.errors import AbortedError, ConfigError, InputError, UnavailableError
from ragstack.generation import (
    Cancel,
    Generator,
    LlamaCppGenerator,
    OpenAICompatibleGenerator,
    Source,
    TextDelta,
    Usage,
    collect,
    packaged_smollm2_path,
)

pytestmark = pytest.mark.slow

API_KEY = "sk-test-0123456789abcdef"
SOURCES = [
    Source(1, "Lace plant", "The lace plant makes holes in its leaves by programmed cell death.")
]
QUESTION = "How does the lace plant make holes in its leaves?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- llama-cpp-python's server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(packaged_smollm2_path()), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
        "--api_key", API_KEY, "--verbose", "False",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start:\n{log_path.read_text()[-3000:]}")
            try:
                headers = {"Authorization": f"Bearer {API_KEY}"}
                if httpx.get(f"{url}/v1/models", headers=headers, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_streams_through_llama_cpp_server(llama_server: str) -> None:
    local = LlamaCppGenerator(n_threads=1)
    with OpenAICompatibleGenerator(
        llama_server,
        "smollm2",
        api_key=API_KEY,
        tokenizer=local.count_tokens,
        extra_body={"repeat_penalty": 1.0},  # the server's default is 1.1; ours is off
    ) as remote:
        assert isinstance(remote, Generator)
        events = list(remote.stream(QUESTION, SOURCES, max_tokens=24))
    *deltas, usage = events
    assert isinstance(usage, Usage) and usage.model == "smollm2"
    assert len(deltas) >= 2 and all(isinstance(d, TextDelta) and d.text for d in deltas)
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    # llama-cpp-python's server streams no usage: counted here, with SmolLM2's own tokenizer
    assert usage.estimated
    assert usage.completion_tokens == local.count_tokens(text)
    # same GGUF, same chat template, greedy: the server says what the in-process model says,
    # and the estimate of the prompt lands within a few tokens of the exact count
    exact = collect(local.stream(QUESTION, SOURCES, max_tokens=24))
    assert text == exact.text
    assert abs(usage.prompt_tokens - exact.usage.prompt_tokens) <= 8


def test_wrong_api_key_is_a_config_error_without_the_key(llama_server: str) -> None:
    wrong = "sk-wrong-fedcba9876543210"
    with (
        OpenAICompatibleGenerator(llama_server, "smollm2", api_key=wrong) as remote,
        pytest.raises(ConfigError, match="refused the credentials") as caught,
    ):
        collect(remote.stream(QUESTION, SOURCES))
    assert_no_secret(caught.value, wrong)


def assert_no_secret(error: BaseException, secret: str) -> None:
    assert secret not in "".join(traceback.format_exception(error))


def test_server_down_fails_fast_after_the_retries() -> None:
    port = free_port()  # nothing listens there
    remote = OpenAICompatibleGenerator(
        f"http://127.0.0.1:{port}/v1", "m", api_key=API_KEY, retries=2, backoff_s=0.05
    )
    started = time.monotonic()
    with pytest.raises(UnavailableError) as caught:
        collect(remote.stream(QUESTION, SOURCES))
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert message.startswith(f"generator at http://127.0.0.1:{port} is not reachable: ")
    assert "ConnectError" in message and message.endswith("(after 3 attempts)")
    assert_no_secret(caught.value, API_KEY)


def test_base_url_is_checked_and_never_shows_credentials() -> None:
    with pytest.raises(ConfigError):
        OpenAICompatibleGenerator("localhost:8080", "m")
    remote = OpenAICompatibleGenerator("http://user:secret@127.0.0.1:9/v1/", "m")
    assert remote.display_url == "http://127.0.0.1:9"
    assert "secret" not in repr(remote)


# -- a scripted server for the failures --------------------------------------------------------

STALL = object()  # in a reply body: stop sending until the test ends


def sse(content: str | None = None, *, finish: str | None = None, **extra: Any) -> str:
    delta = {"content": content} if content is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice], **extra})}\n\n"


ANSWER = [
    sse(None, finish=None),  # the role-only first chunk
    sse("Holes come"),
    ": ping\n\n",  # SSE comment, as sse-starlette sends
    "event: message\n",
    sse(" from PCD [1]."),
    sse(finish="stop"),
    'data: {"choices": [], "usage": {"prompt_tokens": 91, "completion_tokens": 7}}\n\n',
    "data: [DONE]\n\n",
]


@dataclass
class Reply:
    status: int = 200
    body: Sequence[str | object] = field(default_factory=lambda: ANSWER)
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedServer(ThreadingHTTPServer):
    """Answers each POST with the next scripted reply (the last one repeats)."""

    daemon_threads = True

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_reply(self) -> Reply:
        return self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(json.loads(body))
        self.server.authorization.append(self.headers.get("Authorization"))
        reply = self.server.next_reply()
        self.send_response(reply.status)
        content_type = "text/event-stream" if reply.status == 200 else "application/json"
        self.send_header("Content-Type", content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for piece in reply.body:
                if piece is STALL:
                    self.server.release.wait(15)
                    return
                self.wfile.write(str(piece).encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer([])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def remote_for(server: ScriptedServer, **options: Any) -> OpenAICompatibleGenerator:
    settings: dict[str, Any] = {"api_key": API_KEY, "backoff_s": 0.05, "timeout_s": 5.0}
    return OpenAICompatibleGenerator(server.url, "scripted", **(settings | options))


def test_request_shape_and_streamed_usage(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply()]
    done = collect(remote_for(scripted, seed=3).stream(QUESTION, SOURCES, max_tokens=50))
    assert done.text == "Holes come from PCD [1]."
    assert done.usage == Usage(91, 7, "scripted", estimated=False)
    (request,) = scripted.requests
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert (request["model"], request["max_tokens"], request["seed"]) == ("scripted", 50, 3)
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert scripted.authorization == [f"Bearer {API_KEY}"]


def test_a_500_is_retried_then_the_answer_streams(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(500, ['{"error": {"message": "boom"}}']), Reply()]
    assert collect(remote_for(scripted).stream(QUESTION, SOURCES)).text.endswith("[1].")
    assert len(scripted.requests) == 2


def test_a_429_waits_for_retry_after(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(429, ["{}"], {"Retry-After": "1"}), Reply()]
    started = time.monotonic()
    collect(remote_for(scripted).stream(QUESTION, SOURCES))
    assert time.monotonic() - started >= 0.9  # not the 0.05 s backoff
    assert len(scripted.requests) == 2


def test_a_retry_after_beyond_the_limit_fails_at_once(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(429, ["{}"], {"Retry-After": "120"})]
    with pytest.raises(UnavailableError, match="retry after 120 s"):
        collect(remote_for(scripted, max_retry_after_s=5).stream(QUESTION, SOURCES))
    assert len(scripted.requests) == 1


def test_persistent_5xx_gives_up_after_the_retries(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(503, ["{}"])]
    with pytest.raises(UnavailableError, match=r"HTTP 503 .*\(after 3 attempts\)"):
        collect(remote_for(scripted, retries=2).stream(QUESTION, SOURCES))
    assert len(scripted.requests) == 3


def test_a_stall_before_the_first_token_is_retried(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(body=[STALL])]
    remote = remote_for(scripted, timeout_s=0.3, retries=1)
    with pytest.raises(UnavailableError, match=r"read timeout: no answer within 0.3 s"):
        collect(remote.stream(QUESTION, SOURCES))
    assert len(scripted.requests) == 2


def test_a_stall_mid_answer_is_a_timeout_without_retry(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(body=[sse("Holes"), STALL])]
    stream = remote_for(scripted, timeout_s=0.3).stream(QUESTION, SOURCES)
    assert next(stream) == TextDelta("Holes")
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="broke off the answer after 1 chunks: read timeout"):
        next(stream)
    assert time.monotonic() - started < 2
    assert len(scripted.requests) == 1


def test_a_stream_cut_short_is_an_error(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(body=[sse("Holes"), sse(" come")])]  # no finish, no [DONE]
    with pytest.raises(UnavailableError, match="ended before the answer was complete"):
        collect(remote_for(scripted).stream(QUESTION, SOURCES))
    assert len(scripted.requests) == 1


def test_client_errors_are_not_retried(scripted: ScriptedServer) -> None:
    too_long = '{"error": {"message": "Requested tokens exceed context window"}}'
    scripted.replies = [Reply(400, [too_long])]
    with pytest.raises(InputError, match=r"HTTP 400 .*exceed context window") as caught:
        collect(remote_for(scripted).stream(QUESTION, SOURCES))
    assert_no_secret(caught.value, API_KEY)
    scripted.requests.clear()
    scripted.replies = [Reply(404, ['{"detail": "Not Found"}'])]
    with pytest.raises(ConfigError, match="no model 'scripted'"):
        collect(remote_for(scripted).stream(QUESTION, SOURCES))
    assert len(scripted.requests) == 1


def test_without_streamed_usage_tokens_are_estimated(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(body=[sse("one two three"), sse(finish="stop")])]
    remote = remote_for(scripted, tokenizer=lambda text: len(text.split()))
    usage = collect(remote.stream(QUESTION, SOURCES)).usage
    assert usage.estimated and usage.completion_tokens == 3
    assert usage.prompt_tokens > remote.count_tokens(QUESTION)


def test_a_cancel_unblocks_a_stalled_read_at_once_without_retry(scripted: ScriptedServer) -> None:
    """The read blocked on the socket returns when the socket is shut from another thread,
    long before the read timeout, and the server sees the connection go."""
    scripted.replies = [Reply(body=[sse("Holes"), STALL])]
    cancel = Cancel()
    stream = remote_for(scripted, timeout_s=30.0).stream(QUESTION, SOURCES, cancel=cancel)
    assert next(stream) == TextDelta("Holes")
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(AbortedError):
        next(stream)
    assert 0.25 < time.monotonic() - started < 2.0
    assert len(scripted.requests) == 1


def test_a_cancelled_request_is_not_sent_or_retried(scripted: ScriptedServer) -> None:
    cancel = Cancel()
    cancel.set()
    with pytest.raises(AbortedError):
        collect(remote_for(scripted).stream(QUESTION, SOURCES, cancel=cancel))
    assert scripted.requests == []
    # a 503 with a long Retry-After would be waited for; a cancel ends the wait
    scripted.replies = [Reply(503, ["{}"], {"Retry-After": "20"}), Reply()]
    cancel = Cancel()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(AbortedError):
        collect(remote_for(scripted, max_retry_after_s=60).stream(QUESTION, SOURCES, cancel=cancel))
    assert time.monotonic() - started < 3 and len(scripted.requests) == 1
