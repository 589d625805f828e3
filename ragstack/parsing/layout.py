"""Page geometry to reading order: glyphs to lines, lines to columns, columns to paragraphs.

Pure functions over boxes (PDF points, origin top-left, y growing downwards), so they are
tested without any PDF. The PDF reader feeds them the glyphs PDFium reports; the order in
which a file draws its text does not matter, only where the text is on the page:

- ``lines``: glyphs on one baseline and close together form a segment; a wide gap (a column
  gutter, a tab stop) starts another segment on the same baseline.
- ``reading_order``: recursive column split: where a vertical band of whitespace separates
  segments that stand side by side, the left side is read before the right; segments that
  cross the band (a title over both columns, a wide figure caption) cut the page into
  horizontal bands, each read on its own.
- ``paragraphs``: consecutive lines of a column joined while the vertical gap and the font
  size stay those of running text; words hyphenated across lines joined.
- ``furniture``: running headers and footers (the same text, digits aside, in the top or
  bottom margin of several pages) and bare page numbers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_SPACE_EM = 0.18  # a gap wider than this share of the font size separates words
_SEGMENT_EM = 1.2  # wider than this, it separates segments (columns, tab stops)
_HYPHENS = ("-", "\u00ad", "\x02", "\u2010")
_PAGE_NUMBER = re.compile(
    r"^(?:page|p\.|seite|pag\.?)?\s*[-–—(\[]?\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*[-–—)\]]?"
    r"(?:\s*(?:of|/|von|de)\s*\d{1,4})?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Glyph:
    """One character with its box and font size."""

    char: str
    x0: float
    top: float
    x1: float
    bottom: float
    size: float
    space_before: bool = False  # the file (or PDFium) put a word break before it


@dataclass(slots=True)
class Line:
    """A run of text on one baseline (a whole line, or the part of it in one column)."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    size: float

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(slots=True)
class Region:
    """Something placed on the page as a whole (a table), ordered with the lines."""

    x0: float
    top: float
    x1: float
    bottom: float
    payload: object = field(default=None)


Box = Line | Region


def _same_baseline(a: Glyph | Line, b: Glyph | Line) -> bool:
    tolerance = 0.5 * max(min(a.size, b.size), 1.0)
    return (
        abs(a.bottom - b.bottom) <= tolerance
        or abs((a.top + a.bottom) / 2 - (b.top + b.bottom) / 2) <= tolerance
    )


def _continues(a: Glyph | Line, b: Glyph | Line, size: float) -> bool:
    """``b`` goes on from ``a`` on their line: it starts at or after ``a``'s start (ligatures
    overlap) and no further than a segment gap after its end."""
    return b.x0 >= a.x0 - 0.25 * size and b.x0 - a.x1 <= _SEGMENT_EM * size


def lines(glyphs: Iterable[Glyph]) -> list[Line]:
    """Segments of text on one baseline, whatever order the glyphs were drawn in."""
    runs: list[list[Glyph]] = []
    last: Glyph | None = None
    for g in glyphs:
        if not g.char or g.char.isspace():
            continue
        if last is not None:
            size = max(last.size, g.size, 1.0)
            tolerance = 0.5 * max(min(last.size, g.size), 1.0)
            if (
                -tolerance <= last.bottom - g.bottom <= tolerance
                and g.x0 >= last.x0 - 0.25 * size
                and g.x0 - last.x1 <= _SEGMENT_EM * size
            ):  # the inlined _same_baseline and _continues: this loop sees every glyph
                runs[-1].append(g)
                last = g
                continue
        runs.append([g])
        last = g
    made = [_line(run) for run in runs]
    made.sort(key=lambda ln: (round(ln.bottom), ln.x0))
    merged: list[Line] = []
    for line in made:  # runs drawn apart that continue one another on the page
        for prior in reversed(merged[-6:]):
            gap = line.x0 - prior.x1
            size = max(prior.size, line.size, 1.0)
            if _same_baseline(prior, line) and _continues(prior, line, size):
                sep = " " if gap > _SPACE_EM * size else ""
                prior.text += sep + line.text
                prior.x1 = max(prior.x1, line.x1)
                prior.top = min(prior.top, line.top)
                prior.bottom = max(prior.bottom, line.bottom)
                break
        else:
            merged.append(line)
    return [ln for ln in merged if ln.text.strip()]


def _line(run: Sequence[Glyph]) -> Line:
    parts: list[str] = []
    prev: Glyph | None = None
    for g in run:
        if prev is not None and (
            g.space_before or g.x0 - prev.x1 > _SPACE_EM * max(prev.size, g.size, 1.0)
        ):
            parts.append(" ")
        parts.append(g.char)
        prev = g
    return Line(
        "".join(parts),
        min(g.x0 for g in run),
        min(g.top for g in run),
        max(g.x1 for g in run),
        max(g.bottom for g in run),
        round(sorted(g.size for g in run)[len(run) // 2], 1),  # the median glyph's
    )


# -- columns -------------------------------------------------------------------------------------


def _gutter(boxes: Sequence[Box]) -> float | None:
    """An x where a vertical band of whitespace separates boxes that stand side by side."""
    lo = min(b.x0 for b in boxes)
    hi = max(b.x1 for b in boxes)
    if hi - lo < 20:
        return None
    step = 2.0
    bins = int((hi - lo) / step) + 1
    cover = [0] * bins
    for b in boxes:
        for i in range(int((b.x0 - lo) / step), min(bins, int((b.x1 - lo) / step) + 1)):
            cover[i] += 1
    allowed = max(1, len(boxes) // 8)  # a few boxes may span the gutter (titles, captions)
    candidates: list[tuple[int, int, float]] = []  # (crossings, -run length, x)
    i = int(bins * 0.12)
    end = int(bins * 0.88)
    while i < end:
        if cover[i] > allowed:
            i += 1
            continue
        j = i
        while j < end and cover[j] == cover[i]:
            j += 1
        if (j - i) * step >= 6:
            candidates.append((cover[i], -(j - i), lo + (i + j) / 2 * step))
        i = j
    for _crossings, _run, x in sorted(candidates):
        if _side_by_side(boxes, x):
            return x
    return None


def _side_by_side(boxes: Sequence[Box], x: float) -> bool:
    left = [b for b in boxes if b.x1 <= x]
    right = [b for b in boxes if b.x0 >= x]
    if not left or not right or len(left) + len(right) < 4:
        return False
    for side, other in ((left, right), (right, left)):
        # one line alone beside a column is a column only if it starts within that column
        if len(side) == 1 and side[0].top < min(b.top for b in other):
            return False
    overlap = min(max(b.bottom for b in left), max(b.bottom for b in right)) - max(
        min(b.top for b in left), min(b.top for b in right)
    )
    return overlap > 0  # side by side, not one above the other


def reading_order(boxes: Sequence[Box]) -> list[Box]:
    """The boxes of one page in reading order (columns left to right, each top to bottom)."""
    if len(boxes) <= 2:
        return sorted(boxes, key=lambda b: (b.top, b.x0))
    x = _gutter(boxes)
    if x is None:
        return sorted(boxes, key=lambda b: (b.top, b.x0))
    spanning = sorted((b for b in boxes if b.x0 < x < b.x1), key=lambda b: b.top)
    if not spanning:
        left = [b for b in boxes if b.x1 <= x]
        right = [b for b in boxes if b.x0 >= x]
        return reading_order(left) + reading_order(right)
    out: list[Box] = []
    rest = sorted((b for b in boxes if not b.x0 < x < b.x1), key=lambda b: b.top)
    k = 0
    for cut in spanning:
        band = []
        while k < len(rest) and (rest[k].top + rest[k].bottom) / 2 < cut.top:
            band.append(rest[k])
            k += 1
        if band:
            out += reading_order(band)
        out.append(cut)
    if k < len(rest):
        out += reading_order(rest[k:])
    return out


# -- paragraphs ----------------------------------------------------------------------------------


def join_lines(texts: Sequence[str]) -> str:
    """Lines of one paragraph as one text: words hyphenated across a line break joined."""
    out = ""
    for raw in texts:
        text = raw.strip()
        if not text:
            continue
        if out and out[-1] in _HYPHENS and len(out) > 1 and out[-2].islower() and text[0].islower():
            out = out[:-1] + text
        elif out:
            out = out.rstrip("\x02\u00ad") + (" " if out[-1] not in "\x02\u00ad" else "") + text
        else:
            out = text
    return out.replace("\x02", "-").replace("\u00ad", "")


def paragraphs(column: Sequence[Line]) -> list[list[Line]]:
    """Consecutive lines grouped into paragraphs: a new one where the gap grows past the
    line spacing of running text or the font size changes."""
    groups: list[list[Line]] = []
    for line in column:
        if groups:
            prev = groups[-1][-1]
            gap = line.top - prev.bottom
            size = max(prev.size, line.size, 1.0)
            same_size = abs(prev.size - line.size) <= 0.15 * size
            if same_size and -0.3 * size <= gap <= 0.6 * size:
                groups[-1].append(line)
                continue
        groups.append([line])
    return groups


# -- page furniture ------------------------------------------------------------------------------


def _shape(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def is_page_number(text: str) -> bool:
    return bool(_PAGE_NUMBER.match(" ".join(text.split())))


def furniture(
    pages: Sequence[tuple[float, Sequence[Line]]], body: float = 0.0, margin: float = 0.1
) -> set[int]:
    """``id()`` of the lines that are running headers, footers or bare page numbers.

    ``pages`` holds each page's height and lines. A line counts when it sits in the top or
    bottom ``margin`` of its page and either is a page number or has the same shape (digits
    aside) as a margin line on at least half of the pages (and on two at least). On a
    document of one page nothing repeats: there a short line in the top margin set smaller
    than the body text (``body``: its font size) is taken for the running head it looks like
    (footnotes, small too, sit at the bottom and stay).
    """
    seen: Counter[str] = Counter()
    marginal: list[tuple[Line, str]] = []
    for height, page_lines in pages:
        shapes = set()
        for line in page_lines:
            if line.bottom <= height * margin or line.top >= height * (1 - margin):
                shape = _shape(line.text)
                marginal.append((line, shape))
                shapes.add(shape)
        seen.update(shapes)
    need = max(2, (len(pages) + 1) // 2)
    head = {
        id(line)
        for (height, page_lines) in pages[:1]
        for line in page_lines
        if len(pages) == 1
        and line.bottom <= height * margin
        and line.size < 0.85 * body
        and len(line.text.split()) <= 15
    }
    return head | {
        id(line)
        for line, shape in marginal
        if is_page_number(line.text) or (len(pages) >= 2 and seen[shape] >= need)
    }
