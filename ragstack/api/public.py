"""What a caller is shown of the service's results: public ids instead of internal ones,
and per-stage timings for admin keys only (everyone else gets the total).

Both close channels through which a response could depend on documents the caller may not
read: the gaps between sequential ids count hidden documents, and the time one stage took (a
term's postings, the size of a permitted set) can tell whether a guessed word occurs in them.
The service keeps integer ids and full timings; every front door shapes through here.
"""

from __future__ import annotations

from typing import Any

from ragstack.domain import ChunkInfo, DocumentInfo
from ragstack.publicids import PublicIds


def timings(all_ms: dict[str, float], *, admin: bool) -> dict[str, float]:
    if admin:
        return {k: round(v, 3) for k, v in all_ms.items()}
    return {"total_ms": round(all_ms.get("total_ms", 0.0), 3)}


def hit(ids: PublicIds, h: dict[str, Any]) -> dict[str, Any]:
    return {
        **h,
        "chunk_id": ids.chunk(h["chunk_id"]),
        "document_id": ids.document(h["document_id"]),
    }


def answer(ids: PublicIds, response: dict[str, Any], *, admin: bool) -> dict[str, Any]:
    """An ``AnswerResponse.to_dict()`` as the caller sees it."""
    return {
        **response,
        "citations": [hit(ids, c) for c in response["citations"]],
        "sources": [hit(ids, s) for s in response["sources"]],
        "timings_ms": timings(response["timings_ms"], admin=admin),
    }


def document(ids: PublicIds, d: DocumentInfo) -> dict[str, Any]:
    return {
        "id": ids.document(d.id),
        "uri": d.uri,
        "title": d.title,
        "mime": d.mime,
        "source": d.source,
        "chunk_count": d.chunk_count,
        "size_bytes": d.size_bytes,
        "pii_counts": d.pii_counts,
        "updated_at": d.updated_at.isoformat(),
    }


def chunk(ids: PublicIds, c: ChunkInfo) -> dict[str, Any]:
    return {
        "id": ids.chunk(c.id),
        "ordinal": c.ordinal,
        "text": c.text,
        "section": c.section,
        "page": c.page,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "instruction_like": c.instruction_like,
    }
