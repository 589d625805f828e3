"""A live API server for the tests that need a real socket (schemathesis, the browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ragstack.access import Keys
from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import IngestRequest, SourceSpec


@dataclass
class Server:
    url: str
    headers: dict[str, str]
    secret: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("served")
    env = {
        **os.environ,
        "RAGSTACK_DATA_DIR": str(root / "data"),
        "RAGSTACK_EMBEDDER": "hashing",
        "RAGSTACK_PRINCIPAL": "user:admin",
        "RAGSTACK_API_RATE_PER_S": "100000",
        "RAGSTACK_API_BURST": "100000",
    }
    docs = root / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text("# FAQ\n\nDeploys run every Tuesday after review.\n")
    svc = build(Settings(data_dir=root / "data", embedder="hashing", principal="user:admin"))
    svc.ingest(IngestRequest("kb", [SourceSpec(str(docs))], public=True), principal="user:admin")
    _, secret = Keys(svc.store).create("user:root", role="admin")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ragstack.api.server:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env,
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
        yield Server(url, {"Authorization": f"Bearer {secret}"}, secret)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = Path(root / "server.log").read_text()
    assert "Traceback" not in log, log
