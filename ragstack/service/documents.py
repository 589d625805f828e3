"""Documents: list, read, delete, change an ACL (each within what the caller may read)."""

from __future__ import annotations

from collections.abc import Sequence

from ragstack.domain import PUBLIC, ChunkInfo, DocumentInfo, check_principal
from ragstack.errors import InputError, NotFoundError
from ragstack.indexing import collection_lock
from ragstack.ingest.uploads import kept_path
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

    def chunk(
        self,
        collection: str,
        chunk_id: int,
        *,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> tuple[ChunkInfo, DocumentInfo]:
        """One chunk and its document; with ``principals``, only one they may read. A chunk
        that is missing, elsewhere or unreadable is the same ``NotFoundError``."""
        info = self.store.get_collection(collection)
        missing = NotFoundError("no such chunk in this collection")
        found = self.store.get_chunk(chunk_id)
        if found is None:
            raise missing
        try:
            doc = self.store.get_document(
                info.id, found.document_id, readers=principals, tenant=tenant
            )
        except NotFoundError:
            raise missing from None
        return found, doc

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
        doc = self.store.get_document(info.id, document_id, readers=principals, tenant=tenant)
        with collection_lock(self.store, info, self.collection_dir(info)):
            indexes, _ = self.open_indexes(info)
            removed = self.store.delete_documents(info.id, [document_id], index=indexes.sql_writer)
            import numpy as np

            indexes.apply(removed, np.empty(0, np.int64), np.empty((0, info.dim), np.float32), [])
            indexes.save()
        kept = kept_path(self.settings.data_dir, info.id, doc.namespace, doc.uri)
        if kept is not None:
            kept.unlink(missing_ok=True)  # a kept original leaves with its document
        return int(removed.size)

    def set_document_acl(
        self,
        collection: str,
        document_id: int,
        *,
        allow: Sequence[str] = (),
        public: bool = False,
        new_tenant: str | None = None,
        principals: Sequence[str] | None = None,
        tenant: str | None = None,
    ) -> DocumentInfo:
        """Give one document a new ACL (``allow``, or ``public``), and with ``new_tenant``
        a new tenant (trusted callers only: the API never passes one). In force for the next
        request, with nothing re-parsed or re-embedded. With ``principals``, only a document
        they may read (else not found)."""
        if public == bool(allow):
            raise InputError("give the readers (allow) or public, one of the two")
        for p in allow:
            check_principal(p)
        info = self.store.get_collection(collection)
        doc = self.store.get_document(info.id, document_id, readers=principals, tenant=tenant)
        readers = frozenset({PUBLIC} if public else allow)
        self.store.set_acls(info.id, [(doc.id, readers, new_tenant or doc.tenant)])
        return self.store.get_document(info.id, document_id)
