"""Documents: list, read, delete (each within what the caller may read)."""

from __future__ import annotations

from collections.abc import Sequence

from ragstack.domain import ChunkInfo, DocumentInfo
from ragstack.indexing import collection_lock
from ragstack.service.core import ServiceCore


class DocumentsMixin(ServiceCore):
    def documents(
        self,
        collection: str,
        *,
        limit: int = 100,
        offset: int = 0,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> list[DocumentInfo]:
        """A page of documents; with ``principals``, only those they may read."""
        info = self.store.get_collection(collection)
        return self.store.list_documents(
            info.id, limit=limit, offset=offset, readers=principals, tenant=tenant
        )

    def document(
        self,
        collection: str,
        document_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> DocumentInfo:
        """One document; with ``principals``, only one they may read (else not found)."""
        info = self.store.get_collection(collection)
        return self.store.get_document(info.id, document_id, readers=principals, tenant=tenant)

    def chunks(
        self,
        collection: str,
        document_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> list[ChunkInfo]:
        self.document(collection, document_id, principals=principals, tenant=tenant)
        return self.store.list_chunks(document_id)

    def delete_document(
        self,
        collection: str,
        document_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> int:
        """Removes a document from SQL and every index; with ``principals``, only one they may
        read (else not found). Returns the chunks removed."""
        info = self.store.get_collection(collection)
        self.store.get_document(info.id, document_id, readers=principals, tenant=tenant)
        with collection_lock(self.store, info, self.collection_dir(info)):
            indexes, _ = self.open_indexes(info)
            removed = self.store.delete_documents(info.id, [document_id], index=indexes.sql_writer)
            import numpy as np

            indexes.apply(removed, np.empty(0, np.int64), np.empty((0, info.dim), np.float32), [])
            indexes.save()
        return int(removed.size)
