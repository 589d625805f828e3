"""``Store``'s document and chunk reads (ACL-filtered where a caller reads)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session, col

from ragstack.domain import PUBLIC, ChunkInfo, DocumentInfo
from ragstack.errors import ConflictError, NotFoundError
from ragstack.store.base import F32, I64, StoreBase, index_text, readable
from ragstack.store.models import AclRow, ChunkRow, CollectionRow, DocumentRow, IngestRunRow


class DocumentReads(StoreBase):
    def list_documents(
        self,
        collection_id: int,
        *,
        limit: int = 100,
        offset: int = 0,
        readers: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> list[DocumentInfo]:
        """A page of the collection's documents; with ``readers``, only those they may read."""
        q = select(DocumentRow).where(col(DocumentRow.collection_id) == collection_id)
        q = readable(q, readers, tenant)
        with self.session() as s:
            rows = s.scalars(q.order_by(col(DocumentRow.id)).limit(limit).offset(offset)).all()
            acl = self._principals(s, [r.id for r in rows if r.id is not None])
            coll = s.get(CollectionRow, collection_id)
            name = coll.name if coll else ""
            return [self._doc_info(r, name, acl.get(r.id or 0, ())) for r in rows]

    def get_document(
        self,
        collection_id: int,
        document_id: int,
        *,
        readers: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> DocumentInfo:
        """One document; with ``readers``, one they may read, else the same ``NotFoundError``
        as a missing one."""
        q = select(DocumentRow).where(
            col(DocumentRow.collection_id) == collection_id, col(DocumentRow.id) == document_id
        )
        q = readable(q, readers, tenant)
        with self.session() as s:
            row = s.scalars(q).first()
            if row is None:
                # no id in the message: front doors show public ids, never the internal ones
                raise NotFoundError("no such document in this collection")
            coll = s.get(CollectionRow, collection_id)
            return self._doc_info(
                row,
                coll.name if coll else "",
                self._principals(s, [document_id]).get(document_id, ()),
            )

    @staticmethod
    def _principals(s: Session, doc_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        out: dict[int, list[str]] = {}
        for i in range(0, len(doc_ids), 500):
            for doc_id, p in s.execute(
                select(col(AclRow.document_id), col(AclRow.principal)).where(
                    col(AclRow.document_id).in_(doc_ids[i : i + 500])
                )
            ).all():
                out.setdefault(int(doc_id), []).append(p)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    @staticmethod
    def _doc_info(r: DocumentRow, collection: str, principals: tuple[str, ...]) -> DocumentInfo:
        assert r.id is not None
        return DocumentInfo(
            id=r.id,
            collection=collection,
            source=r.source,
            uri=r.uri,
            version=r.version,
            title=r.title,
            mime=r.mime,
            chunk_count=r.chunk_count,
            size_bytes=r.size_bytes,
            principals=principals,
            pii_counts=json.loads(r.pii_counts),
            updated_at=r.updated_at,
            namespace=r.namespace,
            tenant=r.tenant,
        )

    def list_chunks(self, document_id: int) -> list[ChunkInfo]:
        with self.session() as s:
            rows = s.scalars(
                select(ChunkRow)
                .where(col(ChunkRow.document_id) == document_id)
                .order_by(col(ChunkRow.ordinal))
            ).all()
            return [_chunk_info(r) for r in rows]

    def get_chunk(self, chunk_id: int) -> ChunkInfo | None:
        """One chunk by id (no ACL: the caller checks its document), or ``None``."""
        with self.session() as s:
            row = s.get(ChunkRow, chunk_id)
            return _chunk_info(row) if row is not None else None

    def count_documents(self, collection_id: int) -> tuple[int, int]:
        """``(documents, chunks)`` of a collection."""
        with self.session() as s:
            docs = s.execute(
                select(func.count())
                .select_from(DocumentRow)
                .where(col(DocumentRow.collection_id) == collection_id)
            ).scalar_one()
            chunks = s.execute(
                select(func.count())
                .select_from(ChunkRow)
                .where(col(ChunkRow.collection_id) == collection_id)
            ).scalar_one()
        return int(docs), int(chunks)

    def run_counts(self, collection_id: int) -> dict[str, int]:
        """Ingest runs of a collection by status."""
        with self.session() as s:
            rows = s.execute(
                select(col(IngestRunRow.status), func.count())
                .where(col(IngestRunRow.collection_id) == collection_id)
                .group_by(col(IngestRunRow.status))
            ).all()
        return {str(status): int(n) for status, n in rows}

    # -- chunks for the indexes ---------------------------------------------------------------

    def chunk_uris(self, collection_id: int) -> list[tuple[int, str]]:
        """``(chunk id, its document's URI)`` for every chunk of the collection."""
        with self.session() as s:
            rows = s.execute(
                select(col(ChunkRow.id), col(DocumentRow.uri))
                .join(DocumentRow, col(DocumentRow.id) == col(ChunkRow.document_id))
                .where(col(ChunkRow.collection_id) == collection_id)
            ).all()
        return [(int(cid), str(uri)) for cid, uri in rows]

    def chunk_groups(self, collection_id: int, key: str) -> dict[int, str]:
        """Chunk id -> the value of its document's metadata ``key``, for every chunk whose
        document has it (the groups of ``Fusion.group_by``)."""
        with self.session() as s:
            rows = s.execute(
                select(col(ChunkRow.id), col(DocumentRow.meta))
                .join(DocumentRow, col(DocumentRow.id) == col(ChunkRow.document_id))
                .where(col(ChunkRow.collection_id) == collection_id)
            ).all()
        out: dict[int, str] = {}
        parsed: dict[str, object] = {}
        for cid, raw in rows:
            if raw not in parsed:
                parsed[raw] = json.loads(raw or "{}").get(key)
            value = parsed[raw]
            if value is not None:
                out[int(cid)] = str(value)
        return out

    def training_chunks(
        self, collection_id: int, *, public_only: bool = True
    ) -> list[tuple[int, int, str, str, str]]:
        """``(chunk id, document id, document title, section, text)`` of the collection's
        chunks in id order (what ``ragstack adapt`` trains on); ``public_only``: only those of
        documents every caller may read (``public``, no tenant), so that a model shared by
        every reader of the collection learns from nothing an ACL hides."""
        q = (
            select(
                col(ChunkRow.id),
                col(ChunkRow.document_id),
                col(DocumentRow.title),
                col(ChunkRow.section),
                col(ChunkRow.text),
            )
            .join(DocumentRow, col(DocumentRow.id) == col(ChunkRow.document_id))
            .where(col(ChunkRow.collection_id) == collection_id)
            .order_by(col(ChunkRow.id))
        )
        if public_only:
            q = q.where(
                col(DocumentRow.tenant).is_(None),
                select(col(AclRow.document_id))
                .where(
                    col(AclRow.document_id) == col(DocumentRow.id),
                    col(AclRow.principal) == PUBLIC,
                )
                .exists(),
            )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [(int(c or 0), int(d), str(t or ""), str(s or ""), str(x)) for c, d, t, s, x in rows]

    def live_chunk_ids(self, collection_id: int) -> I64:
        with self.session() as s:
            ids = (
                s.execute(
                    select(col(ChunkRow.id))
                    .where(col(ChunkRow.collection_id) == collection_id)
                    .order_by(col(ChunkRow.id))
                )
                .scalars()
                .all()
            )
        return np.array(ids, dtype=np.int64)

    def chunk_payloads(self, ids: Sequence[int], dim: int) -> tuple[I64, F32, list[str]]:
        """``(ids, vectors, texts as indexed)`` of existing chunks, in id order.
        ``ConflictError`` when a vector is not ``dim``-dimensional (a re-embed switched the
        collection's model after the caller read ``dim``)."""
        out_ids: list[int] = []
        vecs: list[bytes] = []
        texts: list[str] = []
        id_list = sorted(int(i) for i in ids)
        with self.session() as s:
            for i in range(0, len(id_list), 500):
                rows = s.execute(
                    select(
                        col(ChunkRow.id),
                        col(ChunkRow.embedding),
                        col(ChunkRow.section),
                        col(ChunkRow.text),
                    )
                    .where(col(ChunkRow.id).in_(id_list[i : i + 500]))
                    .order_by(col(ChunkRow.id))
                ).all()
                for cid, emb, section, text in rows:
                    if len(emb) != 4 * dim:  # the collection's model changed since ``dim``
                        raise ConflictError(
                            f"chunk {cid} holds a {len(emb) // 4}-dimensional vector, not "
                            f"{dim}: the collection was re-embedded meanwhile; read it again"
                        )
                    out_ids.append(int(cid))
                    vecs.append(emb)
                    texts.append(index_text(section, text))
        matrix = (
            np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(-1, dim)
            if vecs
            else np.empty((0, dim), dtype=np.float32)
        )
        return np.array(out_ids, dtype=np.int64), matrix, texts


def _chunk_info(r: ChunkRow) -> ChunkInfo:
    return ChunkInfo(
        id=r.id or 0,
        document_id=r.document_id,
        ordinal=r.ordinal,
        text=r.text,
        section=r.section,
        page=r.page,
        char_start=r.char_start,
        char_end=r.char_end,
        token_count=r.token_count,
        instruction_like=r.instruction_like,
        ocr=r.ocr,
    )
