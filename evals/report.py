"""Benchmark output: a human table on stderr-free stdout, then ONE final JSON line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

Cell = str | int | float | None


def fmt(value: Cell) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    cells = [list(header)] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


class Reporter:
    """Prints tables (unless ``--json``) and always the final JSON line last."""

    def __init__(self, json_only: bool) -> None:
        self.json_only = json_only

    def say(self, text: str) -> None:
        if not self.json_only:
            print(text, flush=True)

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
        self.say("\n" + table(title, header, rows))

    def final(self, payload: object) -> None:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
        sys.stdout.flush()
