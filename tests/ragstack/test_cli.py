"""The CLI end to end (typer's runner, real SQLite, real indexes, the hashing embedder)."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ragstack.cli import app, main
from tests.ragstack.conftest import HANDBOOK, handbook_judgements


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Any]:
    runner = CliRunner()
    env = {
        "RAGSTACK_DATA_DIR": str(tmp_path / "data"),
        "RAGSTACK_EMBEDDER": "hashing",
        "RAGSTACK_PRINCIPAL": "user:alice",
    }

    def invoke(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return invoke


def make_db(path: Path, rows: list[tuple[int, str, str, str | None]]) -> str:
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE IF NOT EXISTS tickets (id INTEGER, subject TEXT, body TEXT, acl TEXT)"
    )
    con.execute("DELETE FROM tickets")
    con.executemany("INSERT INTO tickets VALUES (?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


SQL = ["--sql-query", "SELECT id, subject, body, acl FROM tickets", "--sql-text", "body"]


def test_ingest_rows_of_a_sql_query(run: Callable[..., Any], tmp_path: Path) -> None:
    invoke = run
    url = make_db(
        tmp_path / "crm.db",
        [
            (1, "Login fails", "Reset link sent to bob@example.com.", None),
            (2, "Refund", "Refund approved for order 77.", '["group:finance"]'),
            (3, "Bad ACL", "text", '{"allow": "not a list"'),
        ],
    )
    first = invoke("ingest", url, "-c", "crm", *SQL, "--sql-title", "subject", "--sql-acl", "acl")
    assert (first["ingested"], first["failed"]) == (2, 1)
    problems = first["problems"]
    assert isinstance(problems, list) and "bad ACL" in problems[0]["reason"]
    docs = invoke("documents", "list", "-c", "crm")
    assert isinstance(docs, list)
    by_title = {d["title"]: d for d in docs}
    assert set(by_title) == {"Login fails", "Refund"}
    assert by_title["Refund"]["principals"] == ["group:finance"]
    assert by_title["Login fails"]["principals"] == ["user:alice"], "private to the ingester"
    assert by_title["Login fails"]["pii"] == {"EMAIL": 1}
    assert all(d["uri"].startswith("sql://") and "/tickets/" in d["uri"] for d in docs)

    make_db(tmp_path / "crm.db", [(1, "Login fails", "Fixed by clearing cookies.", None)])
    again = invoke("ingest", url, "-c", "crm", *SQL, "--sql-title", "subject", "--sql-acl", "acl")
    assert (again["updated"], again["deleted"], again["ingested"]) == (1, 1, 0)
    report = invoke("index", "check", "-c", "crm")
    assert isinstance(report, list) and [r["ok"] for r in report] == [True]


def test_database_source_errors_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAGSTACK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAGSTACK_EMBEDDER", "hashing")
    url = make_db(tmp_path / "crm.db", [(1, "a", "b", None)])

    def fails(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", ["ragstack", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code not in (0, None)
        captured = capsys.readouterr()
        assert captured.out == ""  # errors go to stderr: `--json | jq` never reads one
        return " ".join(captured.err.split())

    assert "needs a query" in fails("ingest", url, "-c", "crm")
    out = fails(
        "ingest", url, "-c", "crm", "--sql-query", "SELECT id FROM tickets", "--sql-text", "b"
    )
    assert "no column(s) ['b']" in out and "Traceback" not in out
    out = fails("ingest", "sqlite:///" + str(tmp_path / "nope" / "x.db"), "-c", "crm", *SQL)
    assert "unable to open database file" in out


def test_search_and_tune_from_the_cli(run: Callable[..., Any], tmp_path: Path) -> None:
    invoke = run
    invoke("ingest", str(HANDBOOK), "-c", "hb")
    hr = invoke("search", "pension salary", "-c", "hb", "--as", "group:hr", "-k", "3")
    assert hr["hits"][0]["uri"].endswith("benefits.md") and hr["hits"][0]["title"]
    assert set(hr["timings_ms"]) >= {"embed_ms", "retrieve_ms", "total_ms"}
    bob = invoke("search", "pension salary", "-c", "hb", "--as", "user:bob")
    assert all(not h["uri"].endswith("benefits.md") for h in bob["hits"]), "benefits is HR-only"
    md = invoke("search", "leave", "-c", "hb", "--mime", "text/plain")
    assert md["hits"] == [], "the handbook is Markdown"
    judged = handbook_judgements(tmp_path / "judged")
    tuned = invoke("tune", "-c", "hb", "--data", str(judged), "--as", "user:alice")
    assert tuned["queries"] == 2 and tuned["applied"] and tuned["best_ndcg_at_10"] > 0.5
    assert tuned["best_ndcg_at_10"] >= tuned["rrf60_ndcg_at_10"]
