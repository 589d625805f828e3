"""``PgBm25Index``: a collection's BM25 index as PostgreSQL tables, with the permitted
rows' own statistics (see the package docstring; the statements are ``scoring``'s)."""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    column,
    delete,
    func,
    select,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from indexes import IdFilter, LexicalHits
from indexes.analysis import Analyzer
from ragstack.store.engine import reading
from ragstack.store.pgindex.permits import (
    Allow,
    Permit,
    Permits,
    SqlAllow,
    ViewStats,
    form_of,
    in_permitted,
    permit_params,
    required,
    restrict,
    template,
)
from ragstack.store.pgindex.scoring import KINDS, Scoring
from ragstack.store.pgindex.tables import (
    I64,
    collection_tables,
    copy_in,
    has_id,
    int_ids,
    own_table,
    tend,
)

_VIEWS = 256  # permitted sets whose statistics a BM25 index keeps
_VIEW_TERMS = 100_000  # terms whose frequency one view keeps


class PgBm25Index:
    """``LexicalIndex`` over the ``rs_bm25_*_<collection id>`` tables."""

    backend = "bm25"

    def __init__(
        self,
        engine: Engine,
        collection_id: int,
        *,
        analyzer: Analyzer | None = None,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.engine = engine
        self.collection_id = int(collection_id)
        self.analyzer = analyzer or Analyzer()
        self.k1, self.b = float(k1), float(b)
        post, docs, terms, stats = collection_tables(self.collection_id)["bm25"]
        self.post = own_table(
            post,
            Column("term", Text, primary_key=True),
            Column("id", BigInteger, primary_key=True, autoincrement=False),
            Column("tf", Integer, nullable=False),
            Column("len", Integer, nullable=False),
            Index(f"{post}_id", "id"),  # removals find a document's postings
            # a query term's postings as an index-only scan (no heap page per posting)
            Index(f"{post}_cover", "term", "id", postgresql_include=["tf", "len"]),
        )
        self.docs = own_table(
            docs,
            Column("id", BigInteger, primary_key=True, autoincrement=False),
            Column("len", Integer, nullable=False),
        )
        self.term_df = own_table(
            terms,
            Column("term", Text, primary_key=True),
            Column("df", BigInteger, nullable=False),
        )
        self._views: OrderedDict[tuple[object, ...], ViewStats] = OrderedDict()  # SqlAllow's
        self._views_lock = threading.Lock()
        self._permits = Permits()
        # scoring statements by kind (``KINDS``) and ``form_of``
        self._scoring: dict[tuple[str, str], Select[Any]] = {}
        self.stats = own_table(
            stats,
            Column("one", Integer, primary_key=True, autoincrement=False),
            Column("docs", BigInteger, nullable=False),
            Column("total", BigInteger, nullable=False),
        )

    def create(self, conn: Connection) -> None:
        for table in (self.post, self.docs, self.term_df, self.stats):
            table.create(conn, checkfirst=True)
        for index in self.post.indexes:  # tables made before an index was added gain it
            index.create(conn, checkfirst=True)
        first = pg_insert(self.stats).values(one=1, docs=0, total=0)
        conn.execute(first.on_conflict_do_nothing())

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(self.stats.c.docs)).scalar() or 0)

    def ids(self) -> I64:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.docs.c.id).order_by(self.docs.c.id))
            return np.fromiter(rows.scalars(), dtype=np.int64)

    def terms(self, ids: npt.ArrayLike) -> list[dict[str, int]]:
        """Each id's analysed terms and their frequencies as indexed (``{}`` if absent)."""
        id_list = int_ids(ids)
        out: dict[int, dict[str, int]] = {i: {} for i in id_list}
        with self.engine.connect() as conn:
            for start in range(0, len(id_list), 10_000):
                part = bindparam("ids", id_list[start : start + 10_000], type_=ARRAY(BigInteger))
                p = self.post
                for cid, term, tf in conn.execute(
                    select(p.c.id, p.c.term, p.c.tf).where(p.c.id == any_(part))
                ):
                    out[int(cid)][str(term)] = int(tf)
        return [out[i] for i in id_list]

    def add(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            self.add_in(conn, ids, texts)

    def remove(self, ids: npt.ArrayLike) -> int:
        with self.engine.begin() as conn:
            return self.remove_in(conn, ids)

    def add_in(self, conn: Connection, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        id_list = int_ids(ids)
        if not id_list:
            return
        postings: list[str] = []
        docs: list[str] = []
        df: Counter[str] = Counter()
        total = 0
        for cid, text in zip(id_list, texts, strict=True):
            terms = self.analyzer(text)
            docs.append(f"{cid}\t{len(terms)}\n")
            total += len(terms)
            counts = Counter(terms)
            df.update(counts.keys())
            # COPY's text format: analysed terms are word characters, nothing to escape
            postings += [f"{t}\t{cid}\t{n}\t{len(terms)}\n" for t, n in counts.items()]
        copy_in(conn, f"COPY {self.docs.name} (id, len) FROM STDIN", "".join(docs).encode())
        copy_in(conn, f"COPY {self.post.name} (term, id, tf, len) FROM STDIN",
              "".join(postings).encode())  # fmt: skip
        rows = [{"term": t, "df": n} for t, n in df.items()]
        for start in range(0, len(rows), 5000):
            up = pg_insert(self.term_df).values(rows[start : start + 5000])
            grown = {"df": self.term_df.c.df + up.excluded.df}
            conn.execute(up.on_conflict_do_update(index_elements=["term"], set_=grown))
        self._count_rows(conn, len(id_list), total)
        self._forget()

    def _forget(self) -> None:
        """Drop the statistics kept per permitted set (this object wrote: another process's
        writes are seen through the caller's new ``IdFilter`` or ``SqlAllow.key``)."""
        self._permits.clear()
        with self._views_lock:
            self._views.clear()

    def _count_rows(self, conn: Connection, docs: int, total: int) -> None:
        st = self.stats.c
        conn.execute(update(self.stats).values(docs=st.docs + docs, total=st.total + total))

    def remove_in(self, conn: Connection, ids: npt.ArrayLike) -> int:
        id_list = int_ids(ids)
        if not id_list:
            return 0
        wanted = bindparam("gone", id_list, type_=ARRAY(BigInteger))
        lengths = (
            conn.execute(
                delete(self.docs).where(self.docs.c.id == any_(wanted)).returning(self.docs.c.len)
            )
            .scalars()
            .all()
        )
        if not lengths:
            return 0
        gone = conn.execute(
            delete(self.post).where(self.post.c.id == any_(wanted)).returning(self.post.c.term)
        ).scalars()
        df = Counter(gone)
        if df:
            v = values(column("term", Text), column("n", BigInteger), name="gone_terms").data(
                list(df.items())
            )
            conn.execute(
                update(self.term_df)
                .where(self.term_df.c.term == v.c.term)
                .values(df=self.term_df.c.df - v.c.n)
            )
            conn.execute(delete(self.term_df).where(self.term_df.c.df <= 0))
        self._count_rows(conn, -len(lengths), -sum(lengths))
        self._forget()
        return len(lengths)

    def save(self, path: Path | None = None) -> None:
        """Nothing to write (every change is committed): ``tend``s the tables."""
        tend(self.engine, [t.name for t in (self.post, self.docs, self.term_df)])

    @classmethod
    def load(cls, path: Path) -> PgBm25Index:
        raise TypeError("a database index is opened with its engine, never loaded from a path")

    def __contains__(self, item: object) -> bool:
        return has_id(self.engine, self.docs, item)

    def upsert(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            self.remove_in(conn, ids)
            self.add_in(conn, ids, texts)

    def _view(
        self, conn: Connection, allow: Allow | None, permit: Permit | None, terms: Sequence[str]
    ) -> ViewStats:
        """The statistics of the permitted rows (every row without ``allow``): their number,
        mean length, and the document frequency among them of each of ``terms``. Kept per
        permitted set (an ``IdFilter`` object, or an ``SqlAllow`` naming itself with ``key``:
        both hold the collection's generation, so a committed change starts afresh), as the
        embedded engine keeps its views: a common term's frequency is counted once, not on
        every request."""
        key = allow.key if isinstance(allow, SqlAllow) else None
        if permit is not None:
            view = permit.view
            if view is None:
                view = permit.view = self._count(conn, allow, permit)
        else:
            with self._views_lock:
                view = self._views.get(key) if key is not None else None
                if view is not None and key is not None:
                    self._views.move_to_end(key)
            if view is None:
                view = self._count(conn, allow, None)
                if key is not None:
                    with self._views_lock:
                        self._views[key] = view
                        while len(self._views) > _VIEWS:
                            self._views.popitem(last=False)
        missing = [t for t in terms if t not in view.df]
        if missing and view.n:
            wanted = bindparam("terms", missing, type_=ARRAY(Text))
            if view.everything:  # every row is permitted: the collection's own frequencies
                tdf = self.term_df
                found = conn.execute(
                    select(tdf.c.term, tdf.c.df).where(tdf.c.term == any_(wanted))
                ).all()
            else:
                p = self.post
                where = restrict(p.c.id, required(allow), permit)
                counting = select(p.c.term, func.count()).where(p.c.term == any_(wanted))
                if where is not None:
                    counting = counting.where(where)
                counting = counting.group_by(p.c.term)
                if permit is not None and (permit.bits is not None or not permit.exclude):
                    found = conn.execute(counting).all()  # a test per posting, or probes
                else:
                    with self.engine.begin() as own:
                        # the postings of the terms against the hashed list: probing each
                        # listed id (the plan PostgreSQL picks, guessing 200 ids) reads every
                        # posting of each
                        own.execute(select(func.set_config("enable_nestloop", "off", True)))
                        found = own.execute(counting).all()
            counted = {str(t): int(n) for t, n in found}
            if len(view.df) > _VIEW_TERMS:
                view.df.clear()
            view.df.update({t: counted.get(t, 0) for t in missing})
        return view

    def _count(self, conn: Connection, allow: Allow | None, permit: Permit | None) -> ViewStats:
        """A fresh view: the permitted rows' number and mean length."""
        if permit is not None:
            n, length, everything = permit.n, permit.length, permit.every
        else:
            docs, total = conn.execute(select(self.stats.c.docs, self.stats.c.total)).one()
            n, length, everything = int(docs), int(total), True
            if allow is not None:
                d = self.docs
                row = conn.execute(
                    select(func.count(), func.coalesce(func.sum(d.c.len), 0)).where(
                        in_permitted(d.c.id, allow)
                    )
                ).one()
                everything = int(row[0]) == n
                n, length = int(row[0]), int(row[1])
        return ViewStats(n, max(length / n, 1e-9) if n else 1.0, everything)

    def search(self, query: str, top_k: int, allow: Allow | None = None) -> LexicalHits:
        """The ``top_k`` best permitted chunks, scored with the statistics of the permitted
        chunks alone (their number, mean length and each term's document frequency among
        them, as the embedded engine does); ties to the lower id.

        Each term's idf comes from the view's statistics, so the scoring statement is one
        pass over the query terms' postings (an index-only scan), in double precision, with
        the permitted set materialised once -- or not at all when it is every row."""
        empty = LexicalHits(np.empty(0, np.float32), np.empty(0, np.int64))
        counts = Counter(self.analyzer(query))
        if not counts:
            return empty
        terms = sorted(counts)
        with reading(self.engine) as conn:
            permit = (
                self._permits.get(conn, self.docs, allow) if isinstance(allow, IdFilter) else None
            )
            view = self._view(conn, allow, permit, terms)
            if not view.n:
                return empty
            k1, b = self.k1, self.b
            n = float(view.n)
            # a term's weight for a row is w * tf / (tf + c + d * len)
            weights = []
            for term in terms:
                df = view.df.get(term, 0)
                if df:
                    idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
                    weights.append((term, idf * counts[term] * (k1 + 1.0)))
            if not weights:
                return empty
            where = (
                None
                if allow is None or view.everything
                else restrict(self.post.c.id, allow, permit)
            )
            shape = "all" if where is None else None
            if shape is None and not isinstance(allow, SqlAllow):
                shape = form_of(permit)
            scoring = Scoring(self.post, k1 * (1.0 - b), k1 * b / view.avgdl, where, top_k)
            if shape is not None:  # the scoring statements are kept for the form of set
                scoring.kept = self._scoring
                scoring.shape, scoring.values = shape, permit_params(permit)
                if where is not None and not all((k, shape) in self._scoring for k in KINDS):
                    # kept without the set's values
                    scoring.form = restrict(self.post.c.id, required(allow), template(permit))
            found = scoring.pruned(conn, weights, view.df) if len(weights) > 1 else None
            if found is None:
                found = scoring.full(conn, weights)
        return LexicalHits(
            np.array([r.score for r in found], dtype=np.float32),
            np.array([r.id for r in found], dtype=np.int64),
        )
