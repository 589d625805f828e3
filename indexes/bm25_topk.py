"""The exact top ``k`` of a BM25 query, without scoring every row that holds a query term.

A query's score for a row is the sum, over the query's term occurrences in order, of that
term's weight for the row (float32, starting from zero; absent terms add nothing). The plain
way scatters every occurrence's weights into one array of all rows and selects from it: at a
million rows a common term alone is a million scattered adds. ``top_k`` gets the same hits
and bit-identical scores by the MaxScore argument (Turtle & Flood, 1995):

1. A threshold ``theta``: the ``k``-th best full score among a few rows certain to score high
   (each term's highest-weighted rows). At least ``k`` rows score ``theta`` or more.
2. A row can only score ``theta`` if some term's weight for it, plus the largest weights the
   other terms could add, reaches ``theta``: terms whose largest weights together stay below
   ``theta`` cannot lift a row alone (non-essential), and within an essential term only rows
   whose weight clears ``theta`` minus every other term's largest weight can. Those rows are
   the candidates; every row outside them scores below ``theta``, so the top ``k`` (and
   every row tied with the ``k``-th) are among them.
3. The candidates' scores, each summed exactly as the plain way sums it (same order, same
   float32 additions), so scores do not depend on which rows were pruned.

The bounds carry a relative margin far above float32 rounding. When the candidates would be
a large share of the rows, the plain way is as fast and is used instead. Weights must be
positive (Lucene's idf); ``Bm25Index`` uses the plain way for the Robertson idf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from indexes.types import IdArray, top_k_by_score_then_id, unique_sorted

F32 = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp] | npt.NDArray[np.int32]
TOP = 256  # highest-weighted rows kept per term, for thresholds
_MARGIN = 1e-4  # relative slack on every bound (float32 rounding is ~1e-7 per add)


class TermWeights(NamedTuple):
    """One term's rows (ascending) and weights in one view, its largest weight, and the
    positions of its ``TOP`` largest weights, best first."""

    rows: Rows
    w: F32
    ub: float
    top: npt.NDArray[np.intp]

    @classmethod
    def of(cls, rows: Rows, w: F32) -> TermWeights:
        if w.size == 0:
            return cls(rows, w, 0.0, np.empty(0, dtype=np.intp))
        if w.size > TOP:
            part = np.argpartition(-w, TOP - 1)[:TOP]
            top = part[np.argsort(-w[part], kind="stable")]
        else:
            top = np.argsort(-w, kind="stable")
        return cls(rows, w, float(w[top[0]]), top.astype(np.intp, copy=False))

    def best(self, k: int) -> Rows:
        """Rows of the ``k`` largest weights (any order)."""
        if k <= self.top.size or self.w.size <= self.top.size:
            out: Rows = self.rows[self.top[:k]]
            return out
        return self.rows[np.argpartition(-self.w, min(k, self.w.size) - 1)[:k]]

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.w.nbytes + self.top.nbytes)


EMPTY = TermWeights(np.empty(0, np.int32), np.empty(0, np.float32), 0.0, np.empty(0, np.intp))


def scatter_scores(occurrences: Sequence[TermWeights], n_rows: int) -> F32:
    """Every row's score (the plain way)."""
    scores = np.zeros(n_rows, dtype=np.float32)
    for t in occurrences:
        scores[t.rows] += t.w
    return scores


def score_rows(rows: npt.NDArray[np.intp], occurrences: Sequence[TermWeights]) -> F32:
    """The scores of ``rows`` (ascending), added as ``scatter_scores`` adds them."""
    contrib: dict[int, F32] = {}
    for t in occurrences:
        if id(t) in contrib:
            continue
        if t.rows.size == 0:
            contrib[id(t)] = np.zeros(rows.size, dtype=np.float32)
            continue
        pos = np.minimum(np.searchsorted(t.rows, rows), t.rows.size - 1)
        contrib[id(t)] = np.where(t.rows[pos] == rows, t.w[pos], np.float32(0.0))
    scores = np.zeros(rows.size, dtype=np.float32)
    for t in occurrences:
        scores += contrib[id(t)]
    return scores


def _candidates(occurrences: Sequence[TermWeights], top_k: int) -> npt.NDArray[np.intp] | None:
    """Rows that can reach the top ``top_k`` (step 1 and 2 above), ascending; ``None`` when
    fewer than ``top_k`` rows are certain to score, so nothing can be pruned."""
    distinct = list({id(t): t for t in occurrences if t.rows.size}.values())
    if not distinct:
        return np.empty(0, dtype=np.intp)
    count = {id(t): sum(o is t for o in occurrences) for t in distinct}
    seed = unique_sorted(np.concatenate([t.best(top_k) for t in distinct]).astype(np.intp))
    if seed.size < top_k:
        return None
    seed_scores = score_rows(seed, occurrences)
    theta = float(np.partition(seed_scores, seed.size - top_k)[seed.size - top_k])
    if theta <= 0.0:
        return None
    slack = _MARGIN * theta
    bound = {id(t): t.ub * count[id(t)] * (1 + _MARGIN) for t in distinct}
    total = sum(bound.values())
    # non-essential: the weakest terms, while their largest weights together stay below theta
    lifting: list[TermWeights] = []
    below = 0.0
    for t in sorted(distinct, key=lambda t: bound[id(t)]):
        if not lifting and below + bound[id(t)] < theta - slack:
            below += bound[id(t)]
        else:
            lifting.append(t)
    parts = []
    for t in lifting:
        others = total - bound[id(t)]
        keep = t.w.astype(np.float64) * count[id(t)] * (1 + _MARGIN) >= theta - others - slack
        parts.append(t.rows[keep])
    return unique_sorted(np.concatenate(parts).astype(np.intp)) if parts else seed


def exact_top_k(
    occurrences: Sequence[TermWeights], n_rows: int, ext: IdArray, top_k: int
) -> tuple[F32, IdArray]:
    """The ``top_k`` best rows' ``(scores, ids)``, best first, ties to the lower id: exactly
    what scattering every occurrence and selecting over the matched rows gives."""
    cand = _candidates(occurrences, top_k)
    if cand is None or cand.size > max(4 * 4096, n_rows // 8):
        scores = scatter_scores(occurrences, n_rows)
        rows = np.flatnonzero(scores)
        kept = scores[rows]
    else:
        rows = cand
        kept = score_rows(rows, occurrences)
        matched = kept > 0
        rows, kept = rows[matched], kept[matched]
    best = top_k_by_score_then_id(kept, ext[rows], top_k)
    return kept[best], ext[rows[best]]
