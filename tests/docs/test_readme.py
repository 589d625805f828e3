"""The README documents every setting and every CLI command, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ragstack.cli import app
from ragstack.config import Settings, docs_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_settings_table_is_current() -> None:
    block = README.split("<!-- settings-table -->")[1].split("<!-- /settings-table -->")[0]
    assert block.strip() == docs_table().strip(), "regenerate the README settings table"
    for name in Settings.model_fields:
        assert f"RAGSTACK_{name.upper()}" in README


def test_two_commands_come_first() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    lines = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines() if ln.strip()]
    assert lines == ["make demo", "make test"]
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_documented_command_has_help() -> None:
    runner = CliRunner()
    commands = set(re.findall(r"\.venv/bin/ragstack ([a-z]+(?: [a-z]+)?)", README))
    assert {"ingest", "collections list", "index check"} <= commands
    for command in commands:
        words = [w for w in command.split() if not w.isdigit()]
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (command, result.output)
