"""Request ids and the access log in-process: an id is the caller's when well-formed, else a
new one; it comes back as X-Request-ID, on every log record of the request and in its audit
row; the access line names the route template and never the query, the path or the key."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragstack import logs
from tests.api.test_api import Api, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made


def test_request_ids_reach_the_response_the_logs_and_the_audit(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ragstack.access")
    body = {"collection": "kb", "query": "secret deploy plans"}
    r = api.client.post("/v1/search", json=body, headers={**api.eng, "X-Request-ID": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    for bad in ("has spaces", "x" * 65, 'quote"d', ""):
        other = api.client.post("/v1/search", json=body, headers={**api.eng, "X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", other.headers["x-request-id"])
    fresh = api.client.get("/v1/collections", headers=api.eng).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    missing = api.client.get("/nowhere/at/all?q=secret")
    assert missing.status_code == 404 and missing.headers["x-request-id"]

    lines = [r for r in caplog.records if r.name == "ragstack.access"]
    mine = [r for r in lines if getattr(r, "request_id", None) == "abc-123"]
    assert [(r.method, r.route, r.status) for r in mine] == [("POST", "/v1/search", 200)]  # type: ignore[attr-defined]
    assert any(getattr(r, "route", None) == "unmatched" for r in lines)
    text = " ".join(r.getMessage() + repr(vars(r)) for r in lines)
    assert "secret" not in text and "nowhere" not in text
    assert api.eng["Authorization"].split()[1] not in text

    rows = api.client.get("/v1/audit?request_id=abc-123", headers=api.admin).json()
    assert [(row["action"], row["request_id"]) for row in rows] == [("search", "abc-123")]


def test_json_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("debug", "json")
    try:
        with logs.request_scope("req-42"):
            logging.getLogger("ragstack.test").info("inside %s", "a request", extra={"n": 3})
        logging.getLogger("ragstack.test").warning("outside")
        logging.getLogger("uvicorn.error").info("routed")
    finally:
        logs.configure("warning", "text")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert records[0]["message"] == "inside a request" and records[0]["request_id"] == "req-42"
    assert (records[0]["level"], records[0]["logger"], records[0]["n"]) == (
        "INFO",
        "ragstack.test",
        3,
    )
    assert records[1]["request_id"] == "-" and "time" in records[1]
    assert records[2]["logger"] == "uvicorn.error"  # uvicorn's own loggers go through ours
