"""schemathesis against the running server: ``ragstack serve``'s app under uvicorn in a child
process on a loopback port, its live ``/openapi.json``, an admin key. Every operation gets
generated requests; no response may be a 5xx or disagree with the schema (status codes,
content types, bodies)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from ragstack.access import Keys
from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import IngestRequest, SourceSpec

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    headers: dict[str, str]


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
        yield Server(url, {"Authorization": f"Bearer {secret}"})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = Path(root / "server.log").read_text()
    assert "Traceback" not in log, log


EXAMPLES = 25  # generated requests per operation (fewer where the schema allows fewer)


def _runner(
    operation: Any, label: str, server: Server, calls: dict[str, int]
) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Any) -> None:
        calls[label] += 1
        response = case.call(headers=server.headers, timeout=30)
        assert response.status_code < 500, response.text
        # every check but "valid data accepted": the schema cannot say everything the
        # service validates (a chat needs a user message; upload parts must be files)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    return run


def test_every_operation_conforms(server: Server) -> None:
    """Driven through schemathesis' Python API, one Hypothesis run per operation (its pytest
    plugin does not load under this pytest)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    calls: dict[str, int] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise: the schema is ours
        label = operation.label
        calls[label] = 0

        try:
            _runner(operation, label, server, calls)()
        except BaseException as exc:  # schemathesis raises groups; report every operation
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[label] = f"{type(exc).__name__}: {exc}"[:2000]
    print(f"schemathesis: {len(calls)} operations, {sum(calls.values())} requests")
    assert len(calls) >= 15 and sum(calls.values()) >= 15 * 5, (calls, failures)
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
