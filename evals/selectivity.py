"""What searching only what a caller may read costs, at 1%, 10% and 100% of chunks permitted.

``clone_with_acls`` copies an ingested collection (its SQL rows and stored vectors: nothing is
re-embedded) into one whose documents carry ACLs of three widths: every document is readable
by ``group:all``, about 10% by ``group:ten`` and about 1% by ``group:one``. ``costs`` times
hybrid search (query vectors given, permitted sets warm) as each of them, after (the service
as it is: BM25 statistics over the permitted chunks) and before (BM25 statistics over the
whole collection, the masked-candidates algorithm ragstack had until issue 15: kept here as the
baseline, never in the product), interleaving passes so drift hits both alike.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from indexes import Bm25Index, IdFilter, LexicalHits
from indexes.types import check_top_k, top_k_by_score_then_id
from ragstack.domain import ChunkDraft, DocumentDraft
from ragstack.errors import NotFoundError
from ragstack.service import Ragstack
from ragstack.store.models import ChunkRow, DocumentRow

WIDTHS = {"1%": ("group:one", 0.01), "10%": ("group:ten", 0.10), "100%": ("group:all", 1.0)}


def clone_with_acls(svc: Ragstack, source: str, target: str, *, seed: int = 0) -> int:
    """``target``: ``source``'s documents with the three ACL widths (made once); the number
    of its chunks."""
    try:
        svc.collection(target)
        return svc.store.count_documents(svc.collection(target).id)[1]
    except NotFoundError:
        pass
    src = svc.collection(source)
    dst = svc.create_collection(target, owner="user:eval", vector_backend=src.vector_backend)
    rng = random.Random(seed)
    d, c = DocumentRow.__table__, ChunkRow.__table__  # type: ignore[attr-defined]
    with svc.store.engine.connect() as conn:
        docs = conn.execute(select(d).where(d.c.collection_id == src.id).order_by(d.c.id)).all()
        chunks: dict[int, list[Any]] = {}
        for row in conn.execute(select(c).where(c.c.collection_id == src.id).order_by(c.c.id)):
            chunks.setdefault(int(row.document_id), []).append(row)
    drafts = []
    for doc in docs:
        acl = {"group:all"} | {g for g, share in WIDTHS.values() if rng.random() < share}
        drafts.append(DocumentDraft(
            source=doc.source, uri=doc.uri, version=doc.version, title=doc.title, mime=doc.mime,
            meta=json.loads(doc.meta), tenant=None, principals=frozenset(acl), text=doc.text,
            size_bytes=doc.size_bytes, pii_counts={},
            chunks=[ChunkDraft(ch.ordinal, ch.text, ch.text_hash, ch.section, ch.page,
                               ch.char_start, ch.char_end, ch.token_count, ch.instruction_like,
                               np.frombuffer(ch.embedding, dtype=np.float32))
                    for ch in chunks.get(int(doc.id), [])],
        ))  # fmt: skip
    for start in range(0, len(drafts), 200):
        svc.store.write_documents(dst.id, drafts[start : start + 200])
    svc.reindex(target)  # the indexes from SQL, as after any crash
    return svc.store.count_documents(dst.id)[1]


def global_statistics_search(
    index: Bm25Index, query: str, top_k: int, allow: IdFilter | None = None
) -> LexicalHits:
    """The baseline: BM25 with the whole index's statistics, the permitted ids applied to
    the matching rows afterwards (what ``Bm25Index.search`` did before issue 15)."""
    check_top_k(top_k)
    everyone = index._view(None)
    ext, offsets = index._rows_layout()
    scores = np.zeros(offsets[-1], dtype=np.float32)
    for term in index.analyzer(query):
        rows, w = everyone.weights(index._vocab.get(term, -1))
        scores[rows] += w
    cand = np.flatnonzero(scores)
    if allow is not None:
        cand = cand[allow.mask(ext[cand])]
    best = top_k_by_score_then_id(scores[cand], ext[cand], top_k)
    return LexicalHits(scores[cand][best], ext[cand[best]])


@contextmanager
def global_statistics() -> Iterator[None]:
    """Every ``Bm25Index`` searches as before issue 15 while inside (the baseline)."""
    real = Bm25Index.search
    Bm25Index.search = global_statistics_search  # type: ignore[assignment]
    try:
        yield
    finally:
        Bm25Index.search = real  # type: ignore[method-assign]


def costs(
    svc: Ragstack,
    collection: str,
    queries: Sequence[str],
    vectors: npt.NDArray[np.float32],
    *,
    passes: int = 3,
) -> dict[str, dict[str, float]]:
    """Per width: hybrid search p50 (ms) before and after, and their ratio."""
    out: dict[str, dict[str, float]] = {}
    for width, (group, _share) in WIDTHS.items():

        def run(principals: list[str] = [group]) -> list[float]:  # noqa: B006 (bound per width)
            times = []
            for q, v in zip(queries, vectors, strict=True):
                t0 = time.perf_counter()
                svc.search(collection, q, principals=principals, top_k=10, query_vector=v)
                times.append((time.perf_counter() - t0) * 1000)
            return times

        run()  # warm: the permitted set, its BM25 view, the term weights
        with global_statistics():
            run()
        before: list[float] = []
        after: list[float] = []
        for _ in range(passes):
            with global_statistics():
                before += run()
            after += run()
        p50_before, p50_after = statistics.median(before), statistics.median(after)
        out[width] = {
            "before_p50_ms": p50_before,
            "after_p50_ms": p50_after,
            "ratio": p50_after / p50_before,
        }
    return out
