"""How the PostgreSQL index statements keep to the permitted chunks: an ``SqlAllow`` (the ACL
query joined in SQL) or an ``IdFilter`` looked at once per object (``Permits``) and bound as
one parameter: nothing, a short list, a hashed list of the excluded, or a bitmap."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    LargeBinary,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from indexes import IdFilter
from ragstack.store.pgindex.tables import I64


@dataclass(frozen=True)
class SqlAllow:
    """The permitted chunk ids as a query (``SELECT chunks.id ...``) to join in SQL. ``key``
    names the permitted set for caches (the service's: collection, generation, caller scope
    and filters), ``None`` when it must not be cached."""

    select: Select[Any]
    key: tuple[object, ...] | None = None


Allow = IdFilter | SqlAllow


def in_permitted(id_col: Any, allow: Allow) -> Any:
    if isinstance(allow, SqlAllow):
        return id_col.in_(allow.select)
    return id_col == any_(bindparam("allowed", allow.ids.tolist(), type_=ARRAY(BigInteger)))


def _allowed_cte(allow: Allow) -> Any:
    """The permitted ids as a ``MATERIALIZED`` CTE (its one column first): evaluated once per
    statement and then hashed or probed as its size calls for. Joined as a plain ``IN
    (subquery)``, PostgreSQL re-ran the ACL join for every posting it read (180k nested-loop
    probes of chunks, ACL entries and documents for a two-term query: 2 s at 100k chunks)."""
    if isinstance(allow, SqlAllow):
        query: Any = allow.select
    else:
        ids = bindparam("allowed", allow.ids.tolist(), type_=ARRAY(BigInteger))
        query = select(func.unnest(ids).label("id"))
    return query.cte("allowed").prefix_with("MATERIALIZED")


def _in_allowed(id_col: Any, allowed: Any) -> Any:
    return id_col.in_(select(next(iter(allowed.c))))


@dataclass
class Permit:
    """How statements restrict an index's rows to one ``IdFilter``: not at all (it holds every
    row), to its ids, or to every row but the rest (``exclude``: whichever list is shorter),
    the list as array text for one bound parameter. ``n``: the permitted rows, ``length``
    their total length (BM25's statistics; 0 for a dense index)."""

    n: int
    length: int
    every: bool
    exclude: bool
    text: str
    view: ViewStats | None = None  # a BM25 index's statistics of these rows
    lo: int = 0  # with ``bits``: the id of its first bit
    bits: bytes | None = None  # the permitted ids as a bitmap (see ``as_bitmap``), or None

    @property
    def hi(self) -> int:
        """With ``bits``: the id of its last bit."""
        return self.lo + 8 * len(self.bits or b"") - 1


_BITMAP_ABOVE = 3_000  # listed ids beyond which a compact bitmap replaces the list


def as_bitmap(permitted: I64, listed: int) -> tuple[int, bytes] | None:
    """``(lo, bits)``: bit ``i`` (least significant first, as PostgreSQL's ``get_bit``
    numbers them) set when id ``lo + i`` is permitted -- when the list to send is long and
    the permitted ids are dense enough that the bitmap is no larger than the list as 8-byte
    ids. A long list costs every statement its parsing, materialising and hashing (tens of
    thousands of ids: several ms each time); a bitmap is one bytea tested per row."""
    if listed <= _BITMAP_ABOVE or not permitted.size:
        return None
    lo = int(permitted[0])
    span = int(permitted[-1]) - lo + 1
    if span > 64 * listed:
        return None
    flags = np.zeros(span, dtype=bool)
    flags[permitted - lo] = True
    return lo, np.packbits(flags, bitorder="little").tobytes()


class Permits:
    """``Permit``s of one index per ``IdFilter`` object: the service keeps one object per
    permitted set and collection generation (a committed change makes a new one), so an
    object's rows are counted once, as the embedded engine keeps its views."""

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._items: OrderedDict[int, tuple[weakref.ref[IdFilter], Permit]] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, conn: Connection, table: Table, allow: IdFilter) -> Permit:
        with self._lock:
            hit = self._items.get(id(allow))
            if hit is not None and hit[0]() is allow:
                self._items.move_to_end(id(allow))
                return hit[1]
        has_len = "len" in table.c
        cols = [table.c.id, table.c.len] if has_len else [table.c.id]
        rows = conn.execute(select(*cols).order_by(table.c.id)).all()
        all_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        inside = np.isin(all_ids, allow.ids, assume_unique=True)
        n = int(inside.sum())
        length = 0
        if has_len:
            lengths = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            length = int(lengths[inside].sum())
        exclude = n > all_ids.size - n
        listed = all_ids[~inside] if exclude else all_ids[inside]
        bitmap = as_bitmap(all_ids[inside], listed.size)  # all_ids are in order
        text = "" if bitmap else "{" + ",".join(map(str, listed.tolist())) + "}"
        permit = Permit(n, length, n == all_ids.size, exclude, text)
        if bitmap is not None:
            permit.lo, permit.bits = bitmap
        with self._lock:
            self._items[id(allow)] = (weakref.ref(allow), permit)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return permit


def restrict(
    id_col: Any, allow: Allow, permit: Permit | None, *, per_row: bool = False
) -> Any | None:
    """The condition keeping ``id_col`` to the permitted rows (``None``: every row is). The
    list is a ``MATERIALIZED`` CTE, so it is read once and hashed or probed, never rescanned
    per row. ``per_row``: a test of each row the scan yields (a hashed subplan), for graph
    index scans; a plain ``IN`` becomes a join, and a join cannot follow the graph's order."""
    if isinstance(allow, SqlAllow):
        found = _in_allowed(id_col, _allowed_cte(allow))
        return found.is_(True) if per_row else found
    assert permit is not None
    if permit.every:
        return None
    if permit.bits is not None:
        lo = bindparam("permit_lo", permit.lo, type_=BigInteger)
        hi = bindparam("permit_hi", permit.hi, type_=BigInteger)
        bits = bindparam("permit_bits", permit.bits, type_=LargeBinary)
        # the range first, in a CASE: get_bit past the end is an error, and AND's operands
        # may be evaluated in any order. "<> 0", not "= 1": the planner takes an equality on
        # an expression for 0.5% of the rows and then scanned a graph-filtered table whole
        # and sorted it (60 ms at 100k chunks, half of them permitted); an inequality it
        # takes for 99.5%, near enough for the sets a bitmap is used for (dense, thousands)
        bit = case((id_col.between(lo, hi), func.get_bit(bits, id_col - lo)), else_=0) != 0
        # a plain range also bounds an index range scan, but not for a graph scan: the
        # planner would read the range by id and sort it by distance instead
        return bit if per_row else and_(id_col.between(lo, hi), bit)
    listed = bindparam("permit", permit.text, type_=Text)
    if not permit.exclude and not per_row:
        # a short list of ids (a long one is a bitmap) as an index condition: probes of
        # (term, id) or of the primary key, not a read of every row the rest selects
        return id_col == any_(cast(listed, ARRAY(BigInteger)))
    ids = select(func.unnest(cast(listed, ARRAY(BigInteger))).label("id"))
    cte = ids.cte("listed").prefix_with("MATERIALIZED")
    if permit.exclude:
        return id_col.not_in(select(cte.c.id))  # never a join: a hashed subplan
    return id_col.in_(select(cte.c.id)).is_(True)


def form_of(permit: Permit | None) -> str:
    """The form a statement takes for a permitted set (``restrict``'s): its values are
    bound when it runs (``permit_params``), so one statement object serves every set of
    that form and SQLAlchemy neither rebuilds nor re-keys it per search."""
    if permit is None or permit.every:
        return "all"
    if permit.bits is not None:
        return "bits"
    return "exclude" if permit.exclude else "include"


def template(permit: Permit | None) -> Permit | None:
    """``permit``'s form without its values (a kept statement must not hold a set)."""
    if permit is None:
        return None
    bits = None if permit.bits is None else b""
    return Permit(0, 0, permit.every, permit.exclude, "{}", None, 0, bits)


def permit_params(permit: Permit | None) -> dict[str, Any]:
    """The values of ``restrict``'s parameters for ``permit``."""
    if permit is None or permit.every:
        return {}
    if permit.bits is not None:
        return {"permit_lo": permit.lo, "permit_hi": permit.hi, "permit_bits": permit.bits}
    return {"permit": permit.text}


_VIEWS = 256  # permitted sets whose statistics a BM25 index keeps
_VIEW_TERMS = 100_000  # terms whose frequency one view keeps


@dataclass
class ViewStats:
    """A permitted set's BM25 statistics: its rows, their mean length, whether it is every
    row of the index, and the document frequencies among them of the terms asked so far."""

    n: int
    avgdl: float
    everything: bool
    df: dict[str, int] = field(default_factory=dict)


def required(allow: Allow | None) -> Allow:
    assert allow is not None  # a view that is not every row has a permitted set
    return allow
