"""``Store``'s document writes: each one transaction that bumps the collection's generation
and hands the changed chunk ids to the indexes that live in the database (``IndexWriter``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlmodel import col

from ragstack.domain import ChunkDraft, DocumentDraft, DocumentState, WriteResult
from ragstack.store.base import F32, I64, StoreBase, index_text, next_generation
from ragstack.store.models import AclRow, ChunkRow, CollectionRow, DocumentRow, utcnow

# Called inside a write's transaction with (connection, removed chunk ids, added chunk ids,
# their vectors, their texts as indexed): how indexes that live in the database commit with it.
IndexWriter = Callable[[Connection, I64, I64, F32, Sequence[str]], None]


class DocumentWrites(StoreBase):
    def document_versions(
        self, collection_id: int, namespace: str = ""
    ) -> dict[str, DocumentState]:
        """``uri -> DocumentState`` (id, content version, source, tenant and ACL) of every
        document of a collection in ``namespace``."""
        d = DocumentRow.__table__  # type: ignore[attr-defined]
        a = AclRow.__table__  # type: ignore[attr-defined]
        mine = (d.c.collection_id == collection_id) & (d.c.namespace == namespace)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.uri, d.c.id, d.c.version, d.c.source, d.c.tenant).where(mine)
            ).all()
            acl: dict[int, set[str]] = {}
            for doc_id, principal in conn.execute(
                select(a.c.document_id, a.c.principal)
                .join(d, d.c.id == a.c.document_id)
                .where(mine)
            ):
                acl.setdefault(int(doc_id), set()).add(str(principal))
        return {
            uri: DocumentState(int(i), v, src, tenant, frozenset(acl.get(int(i), ())))
            for uri, i, v, src, tenant in rows
        }

    def set_acls(
        self, collection_id: int, changes: Sequence[tuple[int, frozenset[str], str | None]]
    ) -> None:
        """Give documents new ACLs and tenants, ``(document id, principals, tenant)`` each, in
        one transaction: content, chunks and indexes stay; the generation moves (caches and
        permitted sets die), the index generation does not."""
        if not changes:
            return
        with self.session() as s:
            ids = [doc_id for doc_id, _, _ in changes]
            for i in range(0, len(ids), 500):
                s.execute(delete(AclRow).where(col(AclRow.document_id).in_(ids[i : i + 500])))
            rows = [{"document_id": d, "principal": p} for d, ps, _ in changes for p in sorted(ps)]
            if rows:
                s.execute(insert(AclRow), rows)
            for doc_id, _, tenant in changes:
                s.execute(
                    update(DocumentRow)
                    .where(
                        col(DocumentRow.id) == doc_id,
                        col(DocumentRow.collection_id) == collection_id,
                    )
                    .values(tenant=tenant, updated_at=utcnow())
                )
            s.execute(next_generation(collection_id, indexes=False))
            s.commit()

    def vectors_for_hashes(
        self, collection_id: int, hashes: Iterable[str], *, model_id: str
    ) -> dict[str, bytes]:
        """Stored vectors of the collection's chunks whose embedded text hashes to one of
        ``hashes``, if the collection is pinned to ``model_id`` (vectors of another model are
        never reused)."""
        wanted = list(set(hashes))
        out: dict[str, bytes] = {}
        with self.session() as s:
            for i in range(0, len(wanted), 500):
                rows = s.execute(
                    select(col(ChunkRow.text_hash), col(ChunkRow.embedding))
                    .join(CollectionRow, col(CollectionRow.id) == col(ChunkRow.collection_id))
                    .where(
                        col(ChunkRow.collection_id) == collection_id,
                        col(CollectionRow.embedder_id) == model_id,
                        col(ChunkRow.text_hash).in_(wanted[i : i + 500]),
                    )
                ).all()
                out.update({h: e for h, e in rows})
        return out

    def write_documents(
        self,
        collection_id: int,
        drafts: Sequence[DocumentDraft],
        *,
        index: IndexWriter | None = None,
        shadow: tuple[str, Sequence[F32]] | None = None,
    ) -> list[WriteResult]:
        """Insert or replace documents with their chunks and ACLs, in one transaction (with
        ``index``'s writes, when the indexes live in the database, and with ``shadow``: the
        chunks' vectors under the model a live re-embed moves the collection to,
        ``(model id, one vector per chunk of the drafts, in order)``). A batch costs a few
        statements, not a few per document (``_write_batch``)."""
        results: list[WriteResult] = []
        with self.session() as s:
            keys = [(d.namespace, d.uri) for d in drafts]
            if len(set(keys)) == len(keys):
                results = self._write_batch(s.connection(), collection_id, drafts)
            else:  # a document twice in one batch: the later replaces the earlier, in order
                results = [self._write_batch(s.connection(), collection_id, [d])[0] for d in drafts]
            if shadow is not None and results:
                from ragstack.store.shadow import insert_shadow

                chunks = [c for d in drafts for c in d.chunks]
                insert_shadow(
                    s.connection(),
                    collection_id,
                    shadow[0],
                    np.concatenate([r.added for r in results]).tolist(),
                    [c.text_hash for c in chunks],
                    shadow[1],
                )
            if drafts:
                s.execute(next_generation(collection_id, indexes=True))
            if index is not None and results:
                _write_index(index, s.connection(), results, [c for d in drafts for c in d.chunks])
            s.commit()
        return results

    @staticmethod
    def _write_batch(
        conn: Connection, collection_id: int, drafts: Sequence[DocumentDraft]
    ) -> list[WriteResult]:
        """Documents of distinct ``(namespace, uri)``: the ones present are replaced (their
        chunks and ACL rows deleted, their row updated), the others inserted; then every
        ACL row and every chunk in one statement each. Core, in the caller's transaction."""
        d_t = DocumentRow.__table__  # type: ignore[attr-defined]
        c_t = ChunkRow.__table__  # type: ignore[attr-defined]
        a_t = AclRow.__table__  # type: ignore[attr-defined]
        existing: dict[tuple[str, str], int] = {}
        by_namespace: dict[str, list[str]] = {}
        for d in drafts:
            by_namespace.setdefault(d.namespace, []).append(d.uri)
        for namespace, uris in by_namespace.items():
            for i in range(0, len(uris), 500):
                rows = conn.execute(
                    select(d_t.c.id, d_t.c.uri).where(
                        d_t.c.collection_id == collection_id,
                        d_t.c.namespace == namespace,
                        d_t.c.uri.in_(uris[i : i + 500]),
                    )
                )
                existing.update({(namespace, uri): int(doc_id) for doc_id, uri in rows})
        now = utcnow()

        def values(d: DocumentDraft) -> dict[str, Any]:
            return dict(
                collection_id=collection_id,
                source=d.source,
                namespace=d.namespace,
                uri=d.uri,
                version=d.version,
                title=d.title,
                mime=d.mime,
                meta=json.dumps(d.meta, sort_keys=True),
                tenant=d.tenant,
                text=d.text,
                size_bytes=d.size_bytes,
                chunk_count=len(d.chunks),
                flagged_chunks=sum(c.instruction_like for c in d.chunks),
                pii_counts=json.dumps(d.pii_counts, sort_keys=True),
                updated_at=now,
            )

        replaced = [
            existing[(d.namespace, d.uri)] for d in drafts if (d.namespace, d.uri) in existing
        ]
        removed: dict[int, list[int]] = {doc_id: [] for doc_id in replaced}
        for i in range(0, len(replaced), 500):
            part = replaced[i : i + 500]
            for cid, doc_id in conn.execute(
                select(c_t.c.id, c_t.c.document_id).where(c_t.c.document_id.in_(part))
            ):
                removed[int(doc_id)].append(int(cid))
            conn.execute(delete(c_t).where(c_t.c.document_id.in_(part)))
            conn.execute(delete(a_t).where(a_t.c.document_id.in_(part)))
        if replaced:
            conn.execute(
                update(d_t).where(d_t.c.id == bindparam("doc_id")),
                [{"doc_id": existing[(d.namespace, d.uri)], **values(d)}
                 for d in drafts if (d.namespace, d.uri) in existing],
            )  # fmt: skip
        fresh = [d for d in drafts if (d.namespace, d.uri) not in existing]
        if fresh:
            new_ids = (
                conn.execute(
                    insert(d_t).returning(d_t.c.id, sort_by_parameter_order=True),
                    [{**values(d), "created_at": now} for d in fresh],
                )
                .scalars()
                .all()
            )
            existing.update(
                {(d.namespace, d.uri): int(i) for d, i in zip(fresh, new_ids, strict=True)}
            )
        doc_ids = [existing[(d.namespace, d.uri)] for d in drafts]
        acl = [
            {"document_id": doc_id, "principal": p}
            for doc_id, d in zip(doc_ids, drafts, strict=True)
            for p in sorted(d.principals)
        ]
        if acl:
            conn.execute(insert(a_t), acl)
        added = _insert_chunks(
            conn, collection_id, [(i, d.chunks) for i, d in zip(doc_ids, drafts, strict=True)]
        )
        return [
            WriteResult(doc_id, ids, np.array(removed.get(doc_id, []), dtype=np.int64))
            for doc_id, ids in zip(doc_ids, added, strict=True)
        ]

    def replace_chunks(
        self,
        collection_id: int,
        chunks: Sequence[tuple[int, Sequence[ChunkDraft]]],
        *,
        index: IndexWriter | None = None,
    ) -> list[WriteResult]:
        """Give documents new chunks, ``(document id, its chunks)`` each, in one transaction
        (with ``index``'s writes): text, metadata, tenant and ACL rows stay as they are (a
        change of them meanwhile is not undone). A document gone is left out."""
        d_t = DocumentRow.__table__  # type: ignore[attr-defined]
        c_t = ChunkRow.__table__  # type: ignore[attr-defined]
        with self.session() as s:
            conn = s.connection()
            ids = [doc_id for doc_id, _ in chunks]
            live = set(
                conn.execute(
                    select(d_t.c.id).where(d_t.c.collection_id == collection_id, d_t.c.id.in_(ids))
                ).scalars()
            )
            todo = [(doc_id, new) for doc_id, new in chunks if doc_id in live]
            if not todo:
                return []
            removed: dict[int, list[int]] = {doc_id: [] for doc_id, _ in todo}
            for cid, doc_id in conn.execute(
                select(c_t.c.id, c_t.c.document_id).where(c_t.c.document_id.in_(list(removed)))
            ):
                removed[int(doc_id)].append(int(cid))
            conn.execute(delete(c_t).where(c_t.c.document_id.in_(list(removed))))
            conn.execute(
                update(d_t).where(d_t.c.id == bindparam("doc_id")),
                [{"doc_id": doc_id, "chunk_count": len(new), "updated_at": utcnow(),
                  "flagged_chunks": sum(c.instruction_like for c in new)}
                 for doc_id, new in todo],
            )  # fmt: skip
            added = _insert_chunks(conn, collection_id, todo)
            results = [
                WriteResult(doc_id, ids, np.array(removed[doc_id], dtype=np.int64))
                for (doc_id, _), ids in zip(todo, added, strict=True)
            ]
            s.execute(next_generation(collection_id, indexes=True))
            if index is not None:
                _write_index(index, conn, results, [c for _, new in todo for c in new])
            s.commit()
        return results

    def delete_documents(
        self,
        collection_id: int,
        document_ids: Sequence[int],
        *,
        index: IndexWriter | None = None,
    ) -> I64:
        """Delete documents (and their chunks and ACLs); returns the removed chunk ids."""
        if not document_ids:
            return np.empty(0, dtype=np.int64)
        with self.session() as s:
            removed: list[int] = []
            ids = list(document_ids)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                removed += (
                    s.execute(select(col(ChunkRow.id)).where(col(ChunkRow.document_id).in_(part)))
                    .scalars()
                    .all()
                )
                s.execute(delete(ChunkRow).where(col(ChunkRow.document_id).in_(part)))
                s.execute(delete(AclRow).where(col(AclRow.document_id).in_(part)))
                s.execute(
                    delete(DocumentRow).where(
                        col(DocumentRow.collection_id) == collection_id,
                        col(DocumentRow.id).in_(part),
                    )
                )
            s.execute(next_generation(collection_id, indexes=True))
            gone = np.array(removed, dtype=np.int64)
            if index is not None:
                empty = np.empty(0, dtype=np.int64)
                index(s.connection(), gone, empty, np.empty((0, 0), dtype=np.float32), [])
            s.commit()
        return gone


def _write_index(
    index: IndexWriter, conn: Connection, results: Sequence[WriteResult], chunks: list[ChunkDraft]
) -> None:
    """Hand a write's removed and added chunk ids (with the added chunks' vectors and index
    text, in the same order) to ``index``, inside the write's transaction."""
    vectors = (
        np.stack([c.embedding for c in chunks]).astype(np.float32, copy=False)
        if chunks
        else np.empty((0, 0), dtype=np.float32)
    )
    index(
        conn,
        np.concatenate([r.removed for r in results]),
        np.concatenate([r.added for r in results]),
        vectors,
        [index_text(c.section, c.text) for c in chunks],
    )


def _insert_chunks(
    conn: Connection, collection_id: int, chunks: Sequence[tuple[int, Sequence[ChunkDraft]]]
) -> list[I64]:
    """Chunk rows of documents, ``(document id, its chunks)`` each, in one statement;
    returns each document's new chunk ids."""
    c_t = ChunkRow.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "collection_id": collection_id,
            "document_id": doc_id,
            "ordinal": c.ordinal,
            "text": c.text,
            "text_hash": c.text_hash,
            "section": c.section,
            "page": c.page,
            "char_start": c.char_start,
            "char_end": c.char_end,
            "token_count": c.token_count,
            "instruction_like": c.instruction_like,
            "ocr": c.ocr,
            "embedding": np.ascontiguousarray(c.embedding, dtype=np.float32).tobytes(),
        }
        for doc_id, new in chunks
        for c in new
    ]
    ids = (
        conn.execute(insert(c_t).returning(c_t.c.id, sort_by_parameter_order=True), rows)
        .scalars()
        .all()
        if rows
        else []
    )
    out, pos = [], 0
    for _, new in chunks:
        out.append(np.array(ids[pos : pos + len(new)], dtype=np.int64))
        pos += len(new)
    return out
