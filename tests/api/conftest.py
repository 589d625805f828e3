"""A live API server for the tests that need a real socket (schemathesis, the browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ragstack.access import Keys
from ragstack.app import build
from ragstack.config import Settings
from ragstack.demo import SAMPLE_DIR as HANDBOOK
from ragstack.service import IngestRequest, SourceSpec


@dataclass
class Server:
    url: str
    headers: dict[str, str]  # an admin key's
    secret: str  # the admin key
    keys: dict[str, str] = field(default_factory=dict)  # role -> a key of that role
    pid: int = 0  # the server process (its memory, for the bomb tests)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(root: Path, *, cli: bool = False, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``ragstack serve``'s app under uvicorn in a child process on a loopback port (``cli``:
    started by ``ragstack serve`` itself), over a collection ``kb`` (one public FAQ) and keys of
    every role; ``env``: more settings."""
    settings = {
        "RAGSTACK_DATA_DIR": str(root / "data"),
        "RAGSTACK_EMBEDDER": "hashing",
        "RAGSTACK_PRINCIPAL": "user:admin",
        "RAGSTACK_API_RATE_PER_S": "100000",
        "RAGSTACK_API_BURST": "100000",
        "RAGSTACK_API_AUTH_FAILURES_BURST": "100000",
        **(env or {}),
    }
    docs = root / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text("# FAQ\n\nDeploys run every Tuesday after review.\n")
    svc = build(Settings(data_dir=root / "data", embedder="hashing", principal="user:admin"))
    svc.ingest(IngestRequest("kb", [SourceSpec(str(docs))], public=True), principal="user:admin")
    keys = Keys(svc.store)
    secrets = {
        role: keys.create(f"user:{role}-key", role=role, groups=["group:eng"])[1]
        for role in ("reader", "writer")
    }
    _, secret = keys.create("user:root", role="admin")
    secrets["admin"] = secret
    port = free_port()
    # --no-proxy-headers: X-Forwarded-* count only from RAGSTACK_API_TRUSTED_PROXIES (as under
    # `ragstack serve`), not from every loopback client as uvicorn's default would have it
    command = (
        ["-m", "ragstack", "serve", "--host", "127.0.0.1", "--port", str(port)] if cli else
        ["-m", "uvicorn", "ragstack.api.server:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-proxy-headers"]
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, *command],
        env={**os.environ, **settings},
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("wb"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError((root / "server.log").read_text())
        yield Server(url, {"Authorization": f"Bearer {secret}"}, secret, secrets, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = Path(root / "server.log").read_text()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("served")) as running:
        yield running


# -- a live `ragstack serve` on the handbook, for the real clients (openai, mcp) ----------------


@dataclass
class Live:
    """``ragstack serve`` (the real CLI) on loopback over the handbook: ``handbook`` (every file;
    benefits.md readable by group:hr only, its sidecar says) and ``hr-only`` (benefits.md
    alone). Keys: ``admin``; ``alice`` (a reader in group:hr); ``bob`` (a reader in no group:
    he sees ``handbook`` without benefits.md, and not ``hr-only`` at all)."""

    url: str
    keys: dict[str, str]
    log: Path
    data: Path
    env: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def live_env(root: Path, embedder: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RAGSTACK_DATA_DIR": str(root / "data"),
        "RAGSTACK_EMBEDDER": embedder,
        "RAGSTACK_ONNX_QUERIES": "false",
        "RAGSTACK_PRINCIPAL": "user:admin",
        "RAGSTACK_API_RATE_PER_S": "100000",
        "RAGSTACK_API_BURST": "100000",
        "RAGSTACK_API_AUTH_FAILURES_BURST": "100000",
        "RAGSTACK_LOG_FORMAT": "json",
        **extra,
    }


@contextmanager
def live_server(root: Path, embedder: str = "hashing", **extra_env: str) -> Iterator[Live]:
    """The server on ``embedder`` (the real MiniLM for the answers' sake: ``sentence-
    transformers``), with ``extra_env`` settings."""
    env = live_env(root, embedder, **extra_env)
    svc = build(Settings(data_dir=root / "data", embedder=embedder,
                         principal="user:admin", onnx_queries=False))  # fmt: skip
    svc.ingest(IngestRequest("handbook", [SourceSpec(str(HANDBOOK))], public=True),
               principal="user:admin")  # fmt: skip
    svc.ingest(
        IngestRequest("hr-only", [SourceSpec(str(HANDBOOK), include=("benefits.md",))]),
        principal="user:hr",
    )
    keys = Keys(svc.store)
    secrets = {
        "admin": keys.create("user:root", role="admin")[1],
        "alice": keys.create("user:alice", groups=["group:hr"])[1],
        "bob": keys.create("user:bob")[1],
    }
    svc.store.close()
    port = free_port()
    log = root / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragstack", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ragstack serve did not start:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield Live(url, secrets, log, root / "data", env)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text, text
