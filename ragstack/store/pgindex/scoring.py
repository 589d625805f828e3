"""The BM25 scoring statements of ``PgBm25Index``: every posting of the query terms summed
per row (``Scoring.full``), or MaxScore without the commonest terms' postings
(``Scoring.pruned``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    func,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY


def query_terms(weights: Sequence[tuple[str, float]], name: str) -> Any:
    """The query terms and their weights as a relation ``name(term, w)``: two bound arrays,
    so the statement's text is the same whatever the query (SQLAlchemy compiles it once)."""
    values = bound_terms(name, weights)
    terms = bindparam(f"{name}_terms", values[f"{name}_terms"], type_=ARRAY(Text))
    ws = bindparam(f"{name}_w", values[f"{name}_w"], type_=ARRAY(Float))
    return func.unnest(terms, ws).table_valued("term", "w").render_derived(name=name)


def bound_terms(name: str, weights: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """The values of ``query_terms(weights, name)``'s parameters."""
    return {f"{name}_terms": [t for t, _ in weights], f"{name}_w": [float(w) for _, w in weights]}


# BM25 scoring statements (``Scoring``); "pruned1": pruned with one essential term
KINDS = ("full", "pruned", "pruned1")
_PRUNE_SHARE = 0.05  # terms whose weights together stay below this share of the largest
_THETA_SHARE = 0.8  # ... or below this share of the guessed threshold (``_theta_guess``)
_PRUNE_POSTINGS = 1000  # a guessed cut must skip at least this many postings
_PROBED = 2  # rows scored in full to find theta, per row asked for


def _theta_guess(ordered: Sequence[tuple[str, float]], df: dict[str, int], k: int) -> float:
    """A guess at the ``k``-th best score of a query (terms best weight first): the weight of
    the term whose rows, with those of every better term, first number ``k``, times 0.4
    (one occurrence in a row of average length gets ``w / (1 + k1)``, 0.45 ``w`` at ``k1``
    1.2); 0 when the terms hold fewer than ``k`` rows."""
    rows = 0
    for term, w in ordered:
        rows += df.get(term, 0)
        if rows >= k:
            return 0.4 * w
    return 0.0


_SLACK_REL, _SLACK_ABS = 1e-6, 2e-9  # margins on pruning bounds (ranks compare at 1e-9)


@dataclass
class Scoring:
    """One BM25 query's scoring statements. A term's weight for a row is
    ``w * tf / (tf + c + d * len)`` (``w``: its idf, query count and ``k1 + 1``), below ``w``
    whatever the row; a row's score is the sum over the query terms it holds."""

    post: Table
    c: float
    d: float
    where: Any  # the permitted rows (None: every row)
    top_k: int
    kept: dict[tuple[str, str], Select[Any]] | None = None  # by kind and form of set
    shape: str = ""  # this set's form (``form_of``)
    values: dict[str, Any] = field(default_factory=dict)  # the set's bound values
    form: Any = None  # ``where`` without the set's values, for a statement to keep

    def _statement(self, kind: str, make: Callable[[Any], Select[Any]]) -> Select[Any]:
        """The ``kind`` statement (``KINDS``) for this form of set: kept (built once per
        form, without the set's values: ``make(self.form)``) or, for a set that cannot be
        kept, built with its values (``make(None)``, ``self.where``)."""
        if self.kept is None:
            return make(None)
        found = self.kept.get((kind, self.shape))
        if found is None:
            found = make(self.form)
            self.kept[kind, self.shape] = found
        return found

    def _rows(self, weights: Sequence[tuple[str, float]], name: str, where: Any = None) -> Any:
        """``(id, s)``: each permitted posting of the terms and its weight. Each term's
        postings are a ``LATERAL`` range of the ``(term, id)`` index, whatever the planner's
        statistics say: joined plainly, a table never analysed (autovacuum behind a bulk
        ingest, statistics lost at an unclean stop) was scanned whole for every query, 40 ms
        at 10k chunks instead of 2."""
        p = self.post
        q = query_terms(weights, name)
        part = q.c.w * p.c.tf / (p.c.tf + bindparam("c", self.c, type_=Float)
                                 + bindparam("d", self.d, type_=Float) * p.c.len)  # fmt: skip
        rows = select(p.c.id, part.label("s")).where(p.c.term == q.c.term)
        where = self.where if where is None else where
        rows = rows if where is None else rows.where(where)
        postings = rows.offset(0).lateral(name + "_l")  # OFFSET: never pulled up into a join
        return (
            select(postings.c.id, postings.c.s)
            .select_from(q.join(postings, true()))
            .subquery(name + "_p")
        )

    def _ranked(self, ident: Any, score: Any, *extra: Any) -> Select[Any]:
        # a sum's last bits follow the order PostgreSQL adds in: equal scores are ranked by
        # id at 1e-9 (as the embedded engine ranks its float32 scores)
        return (
            select(ident.label("id"), score.label("score"), *extra)
            .order_by(func.round(score * 1e9).desc(), ident)
            .limit(bindparam("top_k", self.top_k, type_=Integer))
        )

    def full(self, conn: Connection, weights: Sequence[tuple[str, float]]) -> list[Any]:
        """Every permitted posting of every query term, summed per row. The statement is
        built once per form of permitted set (``kept``); the terms, their weights, the
        length constants, ``top_k`` and the set are bound when it runs."""

        def make(form: Any) -> Select[Any]:
            post = self._rows(weights, "q", form)
            return self._ranked(post.c.id, func.sum(post.c.s)).group_by(post.c.id)

        values = {**bound_terms("q", weights), "c": self.c, "d": self.d, "top_k": self.top_k,
                  **self.values}  # fmt: skip
        return list(conn.execute(self._statement("full", make), values).all())

    def pruned(
        self,
        conn: Connection,
        weights: Sequence[tuple[str, float]],
        df: dict[str, int] | None = None,
    ) -> list[Any] | None:
        """The same top ``k`` without reading the postings of the query's commonest terms
        (MaxScore, as ``indexes.bm25_topk``; ``None`` when it cannot be sure, then ``full``).

        The terms whose largest weights ``w`` sum to under ``_PRUNE_SHARE`` of the largest
        (a stopword-like term in nearly every row: idf near 0) are *non-essential*: their
        sum ``R`` bounds what they add to any row. The other terms' postings give partial
        scores; the ``_PROBED * k`` best partials are scored in full, and ``theta``, the
        ``k``-th best of those full scores, is at most the ``k``-th best of all (the
        ``k``-th best partial, which it replaces, fell below it whenever a common term
        added to the top rows, and let nearly every row through as a candidate: at 100k
        chunks, 68k probes for one query). A row without an essential term scores at most
        ``R``, and a row whose partial plus ``R`` stays under ``theta`` cannot reach the top
        ``k``: when ``R`` is under ``theta`` (margins above), only the rest are candidates,
        and each gets its non-essential terms' weights by index lookups of (term, its id),
        once (the best partials' lookups for ``theta`` are their full scores).

        With ``df`` (each term's rows among the permitted ones), common terms are also
        non-essential while their weights sum to under a guess of ``theta``
        (``_theta_guess``) and their postings outnumber the rest's: a wrong guess costs a
        second statement, never a wrong result."""
        ordered = sorted(weights, key=lambda tw: -tw[1])
        limit = _PRUNE_SHARE * ordered[0][1]
        if df is not None:
            limit = max(limit, _THETA_SHARE * _theta_guess(ordered, df, self.top_k))
        cut, rest = len(ordered), 0.0
        while cut > 1 and rest + ordered[cut - 1][1] <= limit:
            cut -= 1
            rest += ordered[cut][1]
        if cut == len(ordered):
            return None
        essential, other = ordered[:cut], ordered[cut:]
        if df is not None and rest > _PRUNE_SHARE * ordered[0][1]:  # a guessed cut: worth it?
            skipped = sum(df.get(t, 0) for t, _ in other)
            if skipped < max(_PRUNE_POSTINGS, sum(df.get(t, 0) for t, _ in essential)):
                return None
        values = {**bound_terms("qe", essential), **bound_terms("qn", other),
                  **bound_terms("qb", other), "rest": rest, "kth": self.top_k - 1,
                  "probed": _PROBED * self.top_k, "c": self.c, "d": self.d, "top_k": self.top_k,
                  **self.values}  # fmt: skip
        kind = "pruned" if len(essential) > 1 else "pruned1"
        stmt = self._statement(kind, lambda form: self._pruned(essential, other, form))
        found = list(conn.execute(stmt, values).all())
        top = found[0].theta if found else None
        if top is None or rest >= float(top) * (1.0 - _SLACK_REL) - _SLACK_ABS:
            return None  # rows without an essential term might rank: score them all
        return found

    def _pruned(
        self, essential: Sequence[tuple[str, float]], other: Sequence[tuple[str, float]], form: Any
    ) -> Select[Any]:
        """``pruned``'s statement: the terms (``qe``: essential, ``qn``: the rest), their
        weights' sum ``rest``, ``kth`` (``top_k - 1``) and the set bound when it runs."""
        post = self._rows(essential, "qe", form)
        if len(essential) > 1:
            ess = select(post.c.id, func.sum(post.c.s).label("part")).group_by(post.c.id)
        else:  # one term: one posting a row, nothing to add up (at 100k chunks, a common
            # term's tens of thousands of postings were hashed for nothing)
            ess = select(post.c.id, post.c.s.label("part"))
        ess_cte = ess.cte("ess").prefix_with("MATERIALIZED")
        best = (  # the best partial scores, scored in full: their k-th best is theta
            select(ess_cte.c.id, ess_cte.c.part)
            .order_by(ess_cte.c.part.desc())
            .limit(bindparam("probed", type_=Integer))
            .cte("best")
            .prefix_with("MATERIALIZED")
        )
        best_full = select(best.c.id, (best.c.part + self._extra(other, best, "qb")).label("full"))
        best_cte = best_full.cte("best_full").prefix_with("MATERIALIZED")
        kth = (  # the k-th best full score among them, found once (a scalar subquery in two
            # places was two sorts)
            select(best_cte.c.full.label("theta"))
            .order_by(best_cte.c.full.desc())
            .offset(bindparam("kth", type_=Integer))
            .limit(1)
            .cte("kth")
            .prefix_with("MATERIALIZED")
        )
        theta = select(kth.c.theta).scalar_subquery()
        floor = func.coalesce(theta, -1.0) * (1.0 - _SLACK_REL) - _SLACK_ABS
        cand = (  # the rest of the rows whose partial plus ``rest`` reaches theta (none when
            # the best partials hold them all): the best are scored already
            select(ess_cte.c.id, ess_cte.c.part)
            .where(
                ess_cte.c.part + bindparam("rest", type_=Float) >= floor,
                ess_cte.c.id.not_in(select(best.c.id)),
            )
            .cte("cand")
            .prefix_with("MATERIALIZED")
        )
        more = select(cand.c.id, (cand.c.part + self._extra(other, cand, "qn")).label("full"))
        scored = union_all(select(best_cte.c.id, best_cte.c.full), more).subquery("scored")
        return self._ranked(scored.c.id, scored.c.full, theta.label("theta"))

    def _extra(self, other: Sequence[tuple[str, float]], rows: Any, name: str) -> Any:
        """What the ``other`` terms add to each of ``rows`` (0 if none): each as a probe of
        (term, id), one per term. Joined plainly, PostgreSQL read every posting of the row by
        id (~40 at 100k chunks) and hashed them against the terms, 17 us a row instead of a
        few."""
        p2 = self.post.alias(name + "_p")
        qn = query_terms(other, name)
        c, d = bindparam("c", self.c, type_=Float), bindparam("d", self.d, type_=Float)
        probe = (
            select(p2.c.tf, p2.c.len)
            .where(p2.c.term == qn.c.term, p2.c.id == rows.c.id)
            .correlate(qn, rows)  # the row two levels out, not a FROM of its own
            .offset(0)
            .lateral(name + "_l")
        )
        extra = (
            select(func.sum(qn.c.w * probe.c.tf / (probe.c.tf + c + d * probe.c.len)))
            .select_from(qn.join(probe, true()))
            .scalar_subquery()
        )
        return func.coalesce(extra, 0.0)
