"""Rewrites the settings table in README.md from ragstack/config.py (tests check it is current)."""

from __future__ import annotations

from pathlib import Path

from ragstack.config import docs_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings-table -->", "<!-- /settings-table -->"


def main() -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{docs_table().strip()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
