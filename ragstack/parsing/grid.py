"""Ruled tables in images (scanned forms, screenshots of spreadsheets): the grid from the
image's ruling lines, the words OCR read placed in its cells.

``find_grids`` looks for long dark horizontal and vertical runs (rules) and keeps the areas
where at least three of each cross (a table of two rows and two columns at least); ``cells``
puts each word (its box's centre) into the grid cell holding it. Rules missing over merged
cells leave the cells merged in the text, not lost. Pure numpy on a greyscale array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
_DARK = 160  # grey level under which a pixel is ink (pastel cell backgrounds stay light)


@dataclass(frozen=True)
class Grid:
    """Rule positions (pixels) of one table: ``rows`` top to bottom, ``cols`` left to right."""

    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """left, top, right, bottom"""
        return self.cols[0], self.rows[0], self.cols[-1], self.rows[-1]


@dataclass(frozen=True)
class Word:
    text: str
    left: int
    top: int
    width: int
    height: int


def _rules(longest: npt.NDArray[np.int64], need: float) -> list[int]:
    """Centres of the runs of consecutive positions whose longest ink run reaches ``need``."""
    hits = np.flatnonzero(longest >= need)
    if hits.size == 0:
        return []
    out: list[int] = []
    start = prev = int(hits[0])
    for h in hits[1:]:
        h = int(h)
        if h > prev + 2:
            out.append((start + prev) // 2)
            start = h
        prev = h
    out.append((start + prev) // 2)
    return out


def _longest_runs(ink: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each row of ``ink``, the length of its longest run of True."""
    n, m = ink.shape
    padded = np.zeros((n, m + 2), dtype=np.int8)
    padded[:, 1:-1] = ink
    diff = np.diff(padded, axis=1)
    longest = np.zeros(n, dtype=np.int64)
    rows_s, cols_s = np.nonzero(diff == 1)
    rows_e, cols_e = np.nonzero(diff == -1)
    lengths = cols_e - cols_s  # starts and ends pair up row by row, in order
    np.maximum.at(longest, rows_s, lengths)
    assert np.array_equal(rows_s, rows_e)
    return longest


def find_grids(image: U8, min_rules: int = 3) -> list[Grid]:
    """The ruled tables of a greyscale image (at most one per band of the page)."""
    height, width = image.shape
    if height < 20 or width < 20:
        return []
    ink = image < _DARK
    across = _rules(_longest_runs(ink), 0.25 * width)
    if len(across) < min_rules:
        return []
    top, bottom = across[0], across[-1]
    span = max(bottom - top, 1)
    down = _rules(_longest_runs(ink[top : bottom + 1].T), 0.6 * span)
    if len(down) < min_rules:
        return []
    left, right = down[0], down[-1]
    # horizontal rules must reach across most of the table found between the verticals
    inner = ink[:, left : right + 1]
    across = _rules(_longest_runs(inner), 0.6 * max(right - left, 1))
    if len(across) < min_rules:
        return []
    return [Grid(tuple(across), tuple(down))]


def cells(grid: Grid, words: Sequence[Word]) -> list[list[str]]:
    """The grid's rows of cell texts, from OCR'd words (their boxes in the same pixels)."""
    rows = len(grid.rows) - 1
    cols = len(grid.cols) - 1
    placed: list[list[list[Word]]] = [[[] for _ in range(cols)] for _ in range(rows)]
    for w in words:
        cx, cy = w.left + w.width / 2, w.top + w.height / 2
        i = int(np.searchsorted(grid.rows, cy)) - 1
        j = int(np.searchsorted(grid.cols, cx)) - 1
        if 0 <= i < rows and 0 <= j < cols:
            placed[i][j].append(w)
    out: list[list[str]] = []
    for row in placed:
        lines = [_cell_lines(cell) for cell in row]
        counts = {len(c) for c in lines if c}
        if len(counts) == 1 and (n := counts.pop()) > 1 and sum(bool(c) for c in lines) > 1:
            # rows the table drew without rules between them: every cell has as many lines
            out += [[c[k] if c else "" for c in lines] for k in range(n)]
        else:
            out.append([" ".join(c) for c in lines])
    return out


def _cell_lines(words: list[Word]) -> list[str]:
    """A cell's lines of words (words that overlap vertically) top down, each left to right."""
    lines: list[tuple[float, float, list[Word]]] = []
    for w in sorted(words, key=lambda w: w.top):
        middle = w.top + w.height / 2
        if lines and abs(middle - lines[-1][0]) <= 0.6 * max(w.height, lines[-1][1]):
            lines[-1][2].append(w)
        else:
            lines.append((middle, float(w.height), [w]))
    return [" ".join(w.text for w in sorted(line, key=lambda w: w.left)) for *_, line in lines]


def clean(image: U8, grid: Grid) -> U8:
    """The table for OCR: each cell's background flattened to white (text on coloured cells
    reads like text on paper) and the rules painted out."""
    out = image.astype(np.float32)
    for top, bottom in zip(grid.rows, grid.rows[1:], strict=False):
        for left, right in zip(grid.cols, grid.cols[1:], strict=False):
            cell = out[top:bottom, left:right]
            if cell.size:
                cell *= 255.0 / max(float(np.median(cell)), 1.0)
    for r in grid.rows:
        out[max(0, r - 3) : r + 4, :] = 255
    for c in grid.cols:
        out[:, max(0, c - 3) : c + 4] = 255
    return np.clip(out, 0, 255).astype(np.uint8)
