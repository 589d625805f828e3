"""The semantic answer cache, in SQL so that every API replica shares it.

A cached answer is served only to a request with the same *view* of the collection and the
same request parameters (``scope_key``): the view is a digest of exactly the chunks the caller
may read (chunk ids are never reused and a chunk's text never changes under its id), so a
change the caller can see (an edit, a deletion, a permission narrowed or widened) makes every
earlier entry unreachable for it at once, while writes to documents it may not read change
nothing it gets back, not even whether its answer was cached. The question must be the same
after normalisation, or embed within ``threshold`` cosine of it *and* pass the near-miss
guard: negation, numbers, named entities (capitalised or alphanumeric tokens such as gene
names) and direction words (increase/decrease, higher/lower...) must agree, so "X reduces Y"
never gets the answer cached for "X does not reduce Y". Questions are stored redacted. A
collection keeps its newest ``max_entries`` entries.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlmodel import col

from ragstack.store import Store
from ragstack.store.models import CacheEntryRow, CacheStatsRow

F32 = npt.NDArray[np.float32]

_NEGATION_WORDS = (
    "not no never none nobody nothing neither nor without cannot cant nt lack lacks lacking "
    "absent absence fail fails failed unable"
)
_NEGATIONS = frozenset(_NEGATION_WORDS.split())
_DIRECTION_GROUPS = (
    "increase increases increased increasing raise raises raised higher more greater up "
    "upregulates upregulated upregulation elevated enhances enhanced promotes promote improves "
    "improved improve",
    "decrease decreases decreased decreasing reduce reduces reduced reducing lower less fewer "
    "down downregulates downregulated downregulation inhibits inhibit suppresses suppress "
    "impairs impaired worsens worse",
    "positive positively",
    "negative negatively",
    "before",
    "after",
    "benefit benefits beneficial",
    "harm harms harmful",
)
_DIRECTIONS = {w: g for g, words in enumerate(_DIRECTION_GROUPS) for w in words.split()}
_WORD = re.compile(r"[A-Za-z0-9][\w\-'’αβγδκ]*")
_NEGATED = re.compile(r"(?i)^(?:non|anti|un|in|dis)-")  # non-birth, anti-inflammatory
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def normalise(question: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())


def _features(question: str) -> tuple[int, frozenset[str], frozenset[str], frozenset[int]]:
    words = _WORD.findall(question.replace("n't", " nt"))
    negations = sum(1 for w in words if w.lower() in _NEGATIONS or _NEGATED.match(w)) % 2
    numbers = frozenset(_NUMBER.findall(question))
    entities = frozenset(
        w.lower()
        for i, w in enumerate(words)
        if (i > 0 and w[0].isupper())
        or any(c.isdigit() for c in w)
        or sum(c.isupper() for c in w) > 1
        or any(c in "αβγδκ" for c in w)
    )
    directions = frozenset(_DIRECTIONS[w.lower()] for w in words if w.lower() in _DIRECTIONS)
    return negations, numbers, entities, directions


def near_miss(a: str, b: str) -> str | None:
    """Why ``b``'s answer must not be served for ``a`` (``None``: no reason found)."""
    fa, fb = _features(a), _features(b)
    for reason, x, y in zip(("negation", "numbers", "entities", "direction"), fa, fb, strict=True):
        if x != y:
            return reason
    return None


@dataclass(frozen=True)
class CacheResult:
    outcome: str  # hit | miss | rejected
    response: dict[str, object] | None
    similarity: float
    reason: str | None = None


def scope_key(
    principals: Iterable[str], tenant: str | None, view: str, params: dict[str, object]
) -> str:
    """Who asks (principals, tenant), what they may read (``view``: a digest of their
    permitted chunks) and how (``params``), as one key."""
    blob = json.dumps(
        {
            "principals": sorted(set(principals)),
            "tenant": tenant,
            "view": view,
            "params": params,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class SemanticCache:
    def __init__(
        self,
        store: Store,
        *,
        threshold: float = 0.9,
        max_candidates: int = 2000,
        max_entries: int = 10_000,
    ) -> None:
        self.store = store
        self.threshold = threshold
        self.max_candidates = max_candidates
        self.max_entries = max_entries

    def lookup(
        self,
        collection_id: int,
        scope: str,
        question: str,
        vector: F32 | Callable[[], F32] | None,
    ) -> CacheResult:
        """The cached answer for ``question``, if any. ``vector`` may be a callable: it is
        called only when no stored question matches exactly (an exact repeat needs no
        embedding at all)."""
        norm = normalise(question)
        entries = CacheEntryRow.__table__  # type: ignore[attr-defined]
        with self.store.engine.connect() as conn:  # Core: this is the hot path of a hit
            rows = conn.execute(
                select(entries.c.id, entries.c.question, entries.c.normalised, entries.c.embedding)
                .where(entries.c.collection_id == collection_id, entries.c.scope == scope)
                .order_by(entries.c.id.desc())
                .limit(self.max_candidates)
            ).all()
            result = self._match([tuple(r) for r in rows], question, norm, vector)
            if result.outcome == "hit" and result.response is not None:
                entry_id = result.response["_entry_id"]
                raw = conn.execute(
                    select(entries.c.response).where(entries.c.id == entry_id)
                ).scalar()
                conn.execute(
                    update(entries).where(entries.c.id == entry_id).values(hits=entries.c.hits + 1)
                )
                result = CacheResult("hit", json.loads(str(raw)), result.similarity, None)
            self._count(conn, collection_id, result.outcome)
            conn.commit()
        return result

    def _match(
        self,
        rows: Sequence[tuple[int, str, str, bytes]],
        question: str,
        norm: str,
        vector: F32 | Callable[[], F32] | None,
    ) -> CacheResult:
        if not rows:
            return CacheResult("miss", None, 0.0)
        for entry_id, _q, n, _e in rows:
            if n == norm:
                return CacheResult("hit", {"_entry_id": entry_id}, 1.0)
        if vector is None:
            return CacheResult("miss", None, 0.0)
        if callable(vector):
            vector = vector()
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(
            len(rows), -1
        )
        sims = matrix @ vector.astype(np.float32).reshape(-1)
        best = int(np.argmax(sims))
        similarity = float(sims[best])
        if similarity < self.threshold:
            return CacheResult("miss", None, similarity)
        reason = near_miss(question, rows[best][1])
        if reason is not None:
            return CacheResult("rejected", None, similarity, reason)
        return CacheResult("hit", {"_entry_id": rows[best][0]}, similarity)

    @staticmethod
    def _count(conn: Connection, collection_id: int, outcome: str) -> None:
        stats = CacheStatsRow.__table__  # type: ignore[attr-defined]
        values = {
            "lookups": stats.c.lookups + 1,
            "hits": stats.c.hits + int(outcome == "hit"),
            "guard_rejections": stats.c.guard_rejections + int(outcome == "rejected"),
        }
        done = conn.execute(
            update(stats).where(stats.c.collection_id == collection_id).values(**values)
        )
        if not done.rowcount:
            conn.execute(
                insert(stats).values(
                    collection_id=collection_id,
                    lookups=1,
                    hits=int(outcome == "hit"),
                    guard_rejections=int(outcome == "rejected"),
                    stores=0,
                )
            )

    def put(
        self,
        collection_id: int,
        generation: int,
        scope: str,
        question: str,
        vector: F32,
        response: dict[str, object],
    ) -> None:
        """Store an answer (``generation``: the collection's when it was made, for operators;
        lookups go by ``scope``, which names the caller's view). The oldest entries beyond
        ``max_entries`` go."""
        entries = CacheEntryRow.__table__  # type: ignore[attr-defined]
        with self.store.session() as s:
            s.add(
                CacheEntryRow(
                    collection_id=collection_id,
                    generation=generation,
                    scope=scope,
                    question=question,
                    normalised=normalise(question),
                    embedding=vector.astype(np.float32).reshape(-1).tobytes(),
                    response=json.dumps(response, default=str),
                )
            )
            s.flush()
            oldest_kept = (
                select(entries.c.id)
                .where(entries.c.collection_id == collection_id)
                .order_by(entries.c.id.desc())
                .offset(self.max_entries - 1)
                .limit(1)
                .scalar_subquery()
            )
            s.execute(
                delete(CacheEntryRow).where(
                    col(CacheEntryRow.collection_id) == collection_id,
                    col(CacheEntryRow.id) < oldest_kept,
                )
            )
            stats = s.get(CacheStatsRow, collection_id) or CacheStatsRow(
                collection_id=collection_id
            )
            stats.stores += 1
            s.add(stats)
            s.commit()

    def clear(self, collection_id: int) -> int:
        with self.store.session() as s:
            n = s.execute(
                select(func.count()).where(col(CacheEntryRow.collection_id) == collection_id)
            ).scalar_one()
            s.execute(
                delete(CacheEntryRow).where(col(CacheEntryRow.collection_id) == collection_id)
            )
            s.commit()
        return int(n)

    def stats(self, collection_id: int) -> dict[str, int]:
        with self.store.session() as s:
            row = s.get(CacheStatsRow, collection_id)
            entries = s.execute(
                select(func.count()).where(col(CacheEntryRow.collection_id) == collection_id)
            ).scalar_one()
        return {
            "lookups": row.lookups if row else 0,
            "hits": row.hits if row else 0,
            "guard_rejections": row.guard_rejections if row else 0,
            "stores": row.stores if row else 0,
            "entries": int(entries),
        }
