"""The installed ``ragstack`` command as a process: its version, where errors go (stderr, so
``--json | jq`` never reads one), log levels and formats, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.ragstack.conftest import HANDBOOK

RAGSTACK = [sys.executable, "-m", "ragstack"]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "RAGSTACK_DATA_DIR": str(tmp_path / "data"),
        "RAGSTACK_EMBEDDER": "hashing",
        "RAGSTACK_PRINCIPAL": "user:alice",
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(
        [*RAGSTACK, *args], env=full_env, capture_output=True, text=True, timeout=300
    )


def test_version_flag_and_command(tmp_path: Path) -> None:
    for args in (["--version"], ["version"]):
        done = run(tmp_path, *args)
        assert done.returncode == 0 and done.stdout.strip() == version("ragstack"), done


def test_errors_go_to_stderr_and_json_output_stays_json(tmp_path: Path) -> None:
    missing = run(tmp_path, "search", "vacation", "-c", "nope", "--json")
    assert missing.returncode == 4  # not_found
    assert missing.stdout == ""
    assert "error (not_found)" in missing.stderr and "nope" in missing.stderr
    ok = run(tmp_path, "ingest", str(HANDBOOK), "-c", "hb", "--json")
    assert ok.returncode == 0, ok.stderr
    hits = run(tmp_path, "search", "vacation days", "-c", "hb", "--json")
    assert hits.returncode == 0 and json.loads(hits.stdout)["hits"]
    bad = run(tmp_path, "search", "x", "-c", "hb", "--json", RAGSTACK_LOG_FORMAT="xml")
    assert bad.returncode == 78 and bad.stdout == ""  # config_error
    assert "RAGSTACK_LOG_FORMAT" in bad.stderr


def test_log_level_and_json_log_lines_on_stderr(tmp_path: Path) -> None:
    done = run(
        tmp_path, "--log-level", "debug", "ingest", str(HANDBOOK), "-c", "hb", "--json",
        RAGSTACK_LOG_FORMAT="json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # stdout is the command's JSON alone
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, "debug logging wrote nothing"
    records = [json.loads(line) for line in lines]  # every stderr line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert {r["level"] for r in records} & {"DEBUG", "INFO"}
    quiet = run(tmp_path, "ingest", str(HANDBOOK), "-c", "hb", "--json")
    assert quiet.returncode == 0 and quiet.stderr.strip() == ""  # default: warning
    wrong = run(tmp_path, "--log-level", "loud", "collections", "list")
    assert wrong.returncode == 2 and "--log-level" in wrong.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script(tmp_path: Path, shell: str) -> None:
    done = subprocess.run(
        ["ragstack", "--show-completion", shell],
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "_RAGSTACK_COMPLETE" in done.stdout  # the hook the shell calls back with


def test_completion_completes_commands(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "_RAGSTACK_COMPLETE": "complete_bash",
        "COMP_WORDS": "ragstack col",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(["ragstack"], env={**env, "PATH": f"{Path(sys.executable).parent}:"
                          f"{os.environ['PATH']}"}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert "collections" in done.stdout.split()
