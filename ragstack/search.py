"""ACL-filtered retrieval over one collection: BM25, dense, or both fused.

The caller's principals (and tenant, and any metadata filters) become an ``IdFilter`` of the
chunk ids they may read, built from SQL, and every index search runs inside that filter: a
chunk outside the caller's ACL is never scored, counted or returned, and ``top_k`` permitted
results come back whenever that many exist.

Fusion of the BM25 and dense rankings is reciprocal rank fusion by default
(``score = sum 1 / (k + rank)``), or a weighted sum of min-max normalised scores; which one,
and its parameters, is per collection and set from an eval set by ``ragstack tune``.

Group evidence (off unless a collection's fusion names a ``group_by`` metadata key): documents
sharing that key's value are parts of one parent (the sections of one abstract, the rows of one
record), and each fused candidate gains ``group_weight`` times the best score of another
candidate of its group, so the parts of the parent that matched rank together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, Connection, any_, bindparam, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from indexes import IdFilter
from ragstack.domain import PUBLIC, MetaValue
from ragstack.embedding import Embedder
from ragstack.errors import InputError
from ragstack.indexing import CollectionIndexes
from ragstack.store import Store
from ragstack.store.models import AclRow, ChunkRow, DocumentRow

if TYPE_CHECKING:
    from ragstack.store.pgindex import SqlAllow

Mode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
FusionMethod = Literal["rrf", "weighted"]


@dataclass(frozen=True)
class Filters:
    """Restrictions on top of the ACL, all applied inside the index search.

    ``meta`` matches documents whose metadata has each key with exactly that value.
    """

    sources: tuple[str, ...] = ()
    uri_prefix: str | None = None
    mime_types: tuple[str, ...] = ()
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    meta: tuple[tuple[str, MetaValue], ...] = ()
    exclude_instruction_like: bool = False

    @classmethod
    def of(cls, meta: Mapping[str, MetaValue] | None = None, **kw: Any) -> Filters:
        return cls(meta=tuple(sorted((meta or {}).items())), **kw)

    @property
    def empty(self) -> bool:
        return self == Filters()


@dataclass(frozen=True)
class Fusion:
    """How BM25 and dense rankings are combined in hybrid mode, and how a reranker's scores
    join the first stage's (``rerank_weight``: 1 = the reranker's order alone, 0 = the first
    stage's; in between, a weighted sum of both min-max normalised over the reranked hits).
    At weight 1 (the default) the hits' scores are the reranker's own. A weight is tuned for one
    reranker (``rerank_model``: ``reranker_identity``, its weights and length) and on hybrid
    search; it is not applied to another reranker, and one collection holds one weight."""

    method: FusionMethod = "rrf"
    rrf_k: int = 60
    dense_weight: float = 0.5  # weighted: dense share; BM25 gets the rest
    candidates: int = 100  # per retriever, before fusion
    group_by: str = ""  # document metadata key naming a parent; "" = no group evidence
    group_weight: float = 0.0  # share of the best sibling's fused score a candidate gains
    rerank_weight: float = 1.0  # reranker share of a reranked hit's score
    rerank_model: str = ""  # identity of the reranker rerank_weight was tuned for ("" = any)

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "weighted"):
            raise InputError(f"fusion must be rrf or weighted, not {self.method!r}")
        if not 1 <= self.rrf_k <= 10_000 or not 0.0 <= self.dense_weight <= 1.0:
            raise InputError("rrf_k must be in 1..10000 and dense_weight in 0..1")
        if not 1 <= self.candidates <= 10_000:
            raise InputError("candidates must be in 1..10000")
        if not 0.0 <= self.group_weight <= 10.0 or len(self.group_by) > 256:
            raise InputError("group_weight must be in 0..10 and group_by at most 256 characters")
        if not 0.0 <= self.rerank_weight <= 1.0 or len(self.rerank_model) > 512:
            raise InputError("rerank_weight must be in 0..1, rerank_model at most 512 characters")

    def rerank_weight_for(self, identity: str) -> float:
        """The reranker's share for the reranker ``identity``: the tuned one if it was tuned
        for it, else 1 (its own order)."""
        return self.rerank_weight if self.rerank_model in ("", identity) else 1.0

    @property
    def grouped(self) -> bool:
        return bool(self.group_by) and self.group_weight > 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> Fusion:
        if not raw:
            return cls()
        data = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float
    document_id: int
    uri: str
    title: str
    section: str
    text: str
    page: int | None
    char_start: int
    char_end: int
    instruction_like: bool = False
    ranks: dict[str, int] = field(default_factory=dict)  # 1-based rank per retriever
    ocr: bool = False  # the chunk's text was read by OCR (an image or a scanned page)


def _from_acl(conn: Connection, collection_id: int, who: Sequence[str]) -> bool:
    """Whether to read the permitted documents starting from the principals' ACL rows rather
    than from the collection's documents, on SQLite (PostgreSQL's planner has statistics).
    Without them SQLite always starts from the collection, probing every document's ACL: at
    1M chunks with 1% permitted that took 389 ms, starting from the ACL rows 51 ms. The
    counts cost no more than the smaller side: the ACL rows are counted only up to the
    collection's document count."""
    if conn.dialect.name != "sqlite":
        return False
    d = DocumentRow.__table__  # type: ignore[attr-defined]
    a = AclRow.__table__  # type: ignore[attr-defined]
    documents = conn.execute(
        select(func.count()).select_from(d).where(d.c.collection_id == collection_id)
    ).scalar_one()
    acl = select(literal(1)).where(a.c.principal.in_(who)).limit(documents + 1).subquery()
    return bool(conn.execute(select(func.count()).select_from(acl)).scalar_one() < documents)


def _permitted_documents(
    collection_id: int,
    who: Sequence[str],
    tenant: str | None,
    filters: Filters,
    *,
    from_acl: bool = False,
) -> Any:
    """``SELECT document id`` of the documents any of ``who`` may read that pass every filter
    but the metadata one (``from_acl``: planned from the ACL rows, the collection's index left
    unused, see ``_from_acl``)."""
    in_collection: Any = col(DocumentRow.collection_id)
    if from_acl:
        in_collection = in_collection + 0  # an expression: SQLite cannot plan from its index
    docs = (
        select(col(AclRow.document_id))
        .join(DocumentRow, col(DocumentRow.id) == col(AclRow.document_id))
        .where(in_collection == collection_id, col(AclRow.principal).in_(who))
    )
    if tenant is not None:
        docs = docs.where(or_(col(DocumentRow.tenant).is_(None), col(DocumentRow.tenant) == tenant))
    if filters.sources:
        docs = docs.where(col(DocumentRow.source).in_(filters.sources))
    if filters.uri_prefix:
        docs = docs.where(col(DocumentRow.uri).startswith(filters.uri_prefix, autoescape=True))
    if filters.mime_types:
        docs = docs.where(col(DocumentRow.mime).in_(filters.mime_types))
    if filters.updated_after is not None:
        docs = docs.where(col(DocumentRow.updated_at) >= filters.updated_after)
    if filters.updated_before is not None:
        docs = docs.where(col(DocumentRow.updated_at) < filters.updated_before)
    return docs


def _chunks_of(documents: Any, filters: Filters) -> Any:
    chunks = select(col(ChunkRow.id)).where(col(ChunkRow.document_id).in_(documents))
    if filters.exclude_instruction_like:
        chunks = chunks.where(col(ChunkRow.instruction_like).is_(False))
    return chunks


def permitted_chunks(
    store: Store,
    collection_id: int,
    principals: Sequence[str],
    *,
    tenant: str | None = None,
    filters: Filters = Filters(),
) -> IdFilter:
    """Ids of the chunks readable by any of ``principals`` (``public`` always counts) that
    pass ``filters``; with a ``tenant``, only documents of that tenant or of none."""
    parts: list[npt.NDArray[np.int64]] = []
    # Core, not the ORM, and the documents as a subquery, not a bound list: a million ids in
    # about a second, and no limit on how many documents a caller may read
    with store.read() as conn:
        who = sorted(set(principals) | {PUBLIC})
        docs = _permitted_documents(
            collection_id, who, tenant, filters,
            from_acl=_from_acl(conn, collection_id, who),
        )  # fmt: skip
        if filters.meta:
            rows = conn.execute(docs.add_columns(col(DocumentRow.meta))).all()
            wanted = dict(filters.meta)
            doc_ids = [
                d for d, raw in rows if all(json.loads(raw).get(k) == v for k, v in wanted.items())
            ]
            for i in range(0, len(doc_ids), 10_000):
                chunks = _chunks_of(doc_ids[i : i + 10_000], filters)
                parts.append(np.fromiter(conn.execute(chunks).scalars(), dtype=np.int64))
        else:
            chunks = _chunks_of(docs, filters)  # IdFilter sorts them (faster than SQL)
            parts.append(np.fromiter(conn.execute(chunks).scalars(), dtype=np.int64))
    return IdFilter(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    """``(lowest, span)`` of non-empty ``values`` for min-max normalising them: ``(v - lowest)
    / span`` (a span of 1 when they are all equal, so each normalises to 0)."""
    lo = min(values)
    return lo, (max(values) - lo) or 1.0


def weighted(
    lists: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float]
) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores; absent from a list counts as its minimum."""
    scores: dict[int, float] = {}
    for hits, w in zip(lists, weights, strict=True):
        if not hits or w == 0:
            continue
        lo, span = _bounds([s for _, s in hits])
        for cid, s in hits:
            scores[cid] = scores.get(cid, 0.0) + w * (s - lo) / span
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def blend(first: Sequence[float], model: Sequence[float], weight: float) -> list[float]:
    """``weight`` x the min-max normalised ``model`` scores plus the rest x the normalised
    ``first`` (first-stage) scores of the same hits: the reranked hits' new scores."""
    if weight >= 1.0:
        return [float(s) for s in model]
    if not model:
        return []
    (lo_m, span_m), (lo_f, span_f) = _bounds(model), _bounds(first)
    return [
        weight * ((m - lo_m) / span_m) + (1.0 - weight) * ((f - lo_f) / span_f)
        for m, f in zip(model, first, strict=True)
    ]


def blended_order(
    first: Sequence[float], model: Sequence[float], weight: float
) -> tuple[list[int], list[float]]:
    """Positions of reranked hits best first by their ``blend``ed score (ties keep the
    first-stage order), and those scores."""
    final = blend(first, model, weight)
    return sorted(range(len(final)), key=lambda i: (-final[i], i)), final


def fuse(
    lexical: Sequence[tuple[int, float]],
    dense: Sequence[tuple[int, float]],
    fusion: Fusion,
) -> list[tuple[int, float]]:
    if fusion.method == "rrf":
        return rrf([[i for i, _ in lexical], [i for i, _ in dense]], fusion.rrf_k)
    return weighted([lexical, dense], [1.0 - fusion.dense_weight, fusion.dense_weight])


def group_boost(
    ranked: Sequence[tuple[int, float]], group_of: Mapping[int, str], weight: float
) -> list[tuple[int, float]]:
    """Each candidate's score plus ``weight`` times the best score of another candidate in
    its group (chunks without a group keep theirs), re-sorted."""
    best: dict[str, list[float]] = {}  # group -> its two best scores
    for cid, s in ranked:
        g = group_of.get(cid)
        if g is not None:
            top = best.setdefault(g, [])
            if len(top) < 2:
                top.append(s)
            elif s > top[1]:
                top[1] = s
            top.sort(reverse=True)
    out = []
    for cid, s in ranked:
        g = group_of.get(cid)
        top = best.get(g, []) if g is not None else []
        other = (top[1] if s >= top[0] else top[0]) if len(top) > 1 else 0.0
        out.append((cid, s + weight * other))
    return sorted(out, key=lambda kv: (-kv[1], kv[0]))


def fuse_grouped(
    lexical: Sequence[tuple[int, float]],
    dense: Sequence[tuple[int, float]],
    fusion: Fusion,
    group_of: Mapping[int, str] | None,
) -> list[tuple[int, float]]:
    """``fuse``, then group evidence when the fusion asks for it and groups are known."""
    ranked = fuse(lexical, dense, fusion)
    if fusion.grouped and group_of:
        ranked = group_boost(ranked, group_of, fusion.group_weight)
    return ranked


@dataclass
class Retrieved:
    """Fused ``(chunk id, score)`` plus each retriever's own ranking (for tuning and traces)."""

    ranked: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    dense: list[tuple[int, float]]


def retrieve(
    indexes: CollectionIndexes,
    embedder: Embedder,
    query: str,
    allow: IdFilter | SqlAllow,
    *,
    mode: Mode = "hybrid",
    top_k: int = 10,
    fusion: Fusion = Fusion(),
    query_vector: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    group_of: Mapping[int, str] | None = None,
) -> Retrieved:
    """Chunk ids only: the part of search that touches indexes, not SQL (``group_of`` maps
    chunk ids to their ``fusion.group_by`` value, for group evidence in hybrid mode)."""
    if isinstance(allow, IdFilter) and len(allow) == 0:
        return Retrieved([], [], [])
    depth = max(top_k, fusion.candidates) if mode == "hybrid" else top_k
    # an SqlAllow only ever reaches the database indexes, which take it (``indexes`` knows
    # only IdFilter, by design: it has no SQL)
    allow = cast(IdFilter, allow)
    lexical: list[tuple[int, float]] = []
    dense: list[tuple[int, float]] = []
    if mode in ("bm25", "hybrid"):
        hits = indexes.lexical.search(query, depth, allow)
        lexical = list(zip(hits.ids.tolist(), hits.scores.tolist(), strict=True))
    if mode in ("dense", "hybrid"):
        q = embedder.embed([query]) if query_vector is None else query_vector.reshape(1, -1)
        dense = indexes.dense.search(q, depth, allow).hits(0)
    if mode == "bm25":
        ranked = lexical
    elif mode == "dense":
        ranked = dense
    else:
        ranked = fuse_grouped(lexical, dense, fusion, group_of)
    return Retrieved(ranked[:top_k], lexical, dense)


def _among(store: Store, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids``: on PostgreSQL one array parameter, so the statement's text is the
    same for any number of ids and its plan is kept (an expanded IN is a new statement for
    each count, planned again: 0.25 ms of the server a search at 100k chunks); on SQLite the
    expanded IN."""
    if store.dialect == "postgresql":
        return column == any_(bindparam("among", list(ids), type_=ARRAY(BigInteger)))
    return column.in_(ids)


def hydrate(store: Store, retrieved: Retrieved) -> list[Hit]:
    """The hits' chunk and document fields from SQL, in ranked order."""
    ranked = retrieved.ranked
    if not ranked:
        return []
    ids = [cid for cid, _ in ranked]
    lex_rank = {cid: r for r, (cid, _) in enumerate(retrieved.lexical, 1)}
    dense_rank = {cid: r for r, (cid, _) in enumerate(retrieved.dense, 1)}
    c, d = ChunkRow.__table__, DocumentRow.__table__  # type: ignore[attr-defined]
    with store.read() as conn:  # Core: no ORM objects, no embedding blobs
        rows = conn.execute(
            select(
                c.c.id, c.c.document_id, c.c.section, c.c.text, c.c.page, c.c.char_start,
                c.c.char_end, c.c.instruction_like, c.c.ocr, d.c.uri, d.c.title,
            )
            .join(d, d.c.id == c.c.document_id)
            .where(_among(store, c.c.id, ids))
        ).all()  # fmt: skip
    by_id = {int(r.id): r for r in rows}
    out = []
    for cid, score in ranked:
        r = by_id.get(cid)
        if r is None:
            continue
        ranks = {}
        if cid in lex_rank:
            ranks["bm25"] = lex_rank[cid]
        if cid in dense_rank:
            ranks["dense"] = dense_rank[cid]
        out.append(
            Hit(
                cid,
                score,
                int(r.document_id),
                r.uri,
                r.title,
                r.section,
                r.text,
                r.page,
                int(r.char_start),
                int(r.char_end),
                bool(r.instruction_like),
                ranks,
                bool(r.ocr),
            )
        )
    return out
