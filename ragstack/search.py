"""ACL-filtered retrieval over one collection: BM25, dense, or both fused with RRF.

The caller's principals become an ``IdFilter`` of the chunk ids they may read, built from
SQL, and every index search runs inside that filter: a chunk outside the caller's ACL is
never scored, counted or returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlmodel import col

from indexes import IdFilter
from ragstack.domain import PUBLIC
from ragstack.embedding import Embedder
from ragstack.indexing import CollectionIndexes
from ragstack.store import Store
from ragstack.store.models import AclRow, ChunkRow, DocumentRow

Mode = Literal["bm25", "dense", "hybrid"]
RRF_K = 60


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


def permitted_chunks(store: Store, collection_id: int, principals: Sequence[str]) -> IdFilter:
    """Ids of the chunks readable by any of ``principals`` (``public`` always counts)."""
    who = sorted(set(principals) | {PUBLIC})
    with store.session() as s:
        ids = (
            s.execute(
                select(col(ChunkRow.id))
                .join(AclRow, col(AclRow.document_id) == col(ChunkRow.document_id))
                .where(col(ChunkRow.collection_id) == collection_id, col(AclRow.principal).in_(who))
                .distinct()
            )
            .scalars()
            .all()
        )
    return IdFilter(np.array(ids, dtype=np.int64))


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def search(
    store: Store,
    indexes: CollectionIndexes,
    embedder: Embedder,
    query: str,
    *,
    principals: Sequence[str],
    mode: Mode = "hybrid",
    top_k: int = 10,
    candidates: int = 100,
) -> list[Hit]:
    allow = permitted_chunks(store, indexes.info.id, principals)
    if len(allow) == 0:
        return []
    ranked: list[tuple[int, float]]
    lexical = dense = None
    if mode in ("bm25", "hybrid"):
        hits = indexes.lexical.search(query, candidates if mode == "hybrid" else top_k, allow)
        lexical = list(zip(hits.ids.tolist(), hits.scores.tolist(), strict=True))
    if mode in ("dense", "hybrid"):
        q = embedder.embed([query])
        res = indexes.dense.search(q, candidates if mode == "hybrid" else top_k, allow)
        dense = res.hits(0)
    if mode == "bm25":
        ranked = lexical or []
    elif mode == "dense":
        ranked = dense or []
    else:
        ranked = rrf([[i for i, _ in lexical or []], [i for i, _ in dense or []]])
    return _hydrate(store, ranked[:top_k])


def _hydrate(store: Store, ranked: list[tuple[int, float]]) -> list[Hit]:
    if not ranked:
        return []
    ids = [cid for cid, _ in ranked]
    with store.session() as s:
        rows = s.execute(
            select(ChunkRow, col(DocumentRow.uri), col(DocumentRow.title))
            .join(DocumentRow, col(DocumentRow.id) == col(ChunkRow.document_id))
            .where(col(ChunkRow.id).in_(ids))
        ).all()
    by_id = {int(c.id or 0): (c, uri, title) for c, uri, title in rows}
    out = []
    for cid, score in ranked:
        found = by_id.get(cid)
        if found is not None:
            c, uri, title = found
            out.append(
                Hit(
                    cid,
                    score,
                    c.document_id,
                    uri,
                    title,
                    c.section,
                    c.text,
                    c.page,
                    c.char_start,
                    c.char_end,
                )
            )
    return out
