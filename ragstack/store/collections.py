"""``Store``'s collections: their rows, settings and generations."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from ragstack.domain import CollectionInfo, Principal
from ragstack.errors import ConflictError, NotFoundError
from ragstack.store.base import StoreBase, next_generation, readable
from ragstack.store.engine import pin_of
from ragstack.store.models import (
    AclRow,
    CacheEntryRow,
    CacheStatsRow,
    ChunkRow,
    CollectionRow,
    CollectionSettingRow,
    DocumentRow,
    IngestErrorRow,
    IngestRunRow,
    utcnow,
)


def _collection_info(row: Any) -> CollectionInfo:
    """From an ORM ``CollectionRow`` or a Core row of the same table."""
    assert row.id is not None
    return CollectionInfo(
        id=row.id,
        name=row.name,
        tenant=row.tenant,
        owner=row.owner,
        embedder_id=row.embedder_id,
        dim=row.dim,
        vector_backend=row.vector_backend,
        pii_mode=row.pii_mode,
        pii_ner=row.pii_ner,
        default_acl=tuple(json.loads(row.default_acl)),
        generation=row.generation,
        created_at=row.created_at,
        index_generation=row.index_generation,
        dense_name=row.dense_name,
    )


class CollectionStore(StoreBase):
    def create_collection(
        self,
        *,
        name: str,
        owner: Principal,
        tenant: str | None,
        embedder_id: str,
        dim: int,
        vector_backend: str,
        pii_mode: str,
        pii_ner: bool,
        default_acl: Sequence[Principal],
    ) -> CollectionInfo:
        row = CollectionRow(
            name=name,
            owner=owner,
            tenant=tenant,
            embedder_id=embedder_id,
            dim=dim,
            vector_backend=vector_backend,
            pii_mode=pii_mode,
            pii_ner=pii_ner,
            pii_salt=secrets.token_hex(16),
            default_acl=json.dumps(sorted(set(default_acl))),
        )
        with self.session() as s:
            s.add(row)
            try:
                s.commit()
            except IntegrityError as exc:
                raise ConflictError(f"collection {name!r} already exists") from exc
            return _collection_info(row)

    def _collection_row(self, s: Session, name: str) -> CollectionRow:
        row = s.scalars(select(CollectionRow).where(col(CollectionRow.name) == name)).first()
        if row is None:
            raise NotFoundError(f"no collection named {name!r}")
        return row

    def get_collection(self, name: str) -> CollectionInfo:
        """On every search and answer (the generation must be fresh), so Core, not the ORM;
        within ``pinned``, read once (a request sees one state of the collection's row)."""
        pin = pin_of(self.engine)
        if pin is not None and name in pin.collections:
            return pin.collections[name]
        table = CollectionRow.__table__  # type: ignore[attr-defined]
        with self.read() as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no collection named {name!r}")
        info = _collection_info(row)
        if pin is not None:
            pin.collections[name] = info
        return info

    def get_collection_by_id(self, collection_id: int) -> CollectionInfo:
        table = CollectionRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == collection_id)).first()
        if row is None:
            raise NotFoundError(f"no collection with id {collection_id}")
        return _collection_info(row)

    def pii_salt(self, name: str) -> str:
        with self.session() as s:
            return self._collection_row(s, name).pii_salt

    def list_collections(self) -> list[CollectionInfo]:
        with self.session() as s:
            rows = s.scalars(select(CollectionRow).order_by(col(CollectionRow.name))).all()
            return [_collection_info(r) for r in rows]

    def readable_documents(
        self, principals: Sequence[str], tenant: str | None = None
    ) -> dict[int, int]:
        """Collection id -> how many of its documents any of ``principals`` (or ``public``)
        may read, for collections with at least one (within ``tenant`` when given)."""
        q = select(col(DocumentRow.collection_id), func.count()).group_by(
            col(DocumentRow.collection_id)
        )
        with self.session() as s:
            rows = s.execute(readable(q, principals, tenant)).all()
        return {int(c): int(n) for c, n in rows}

    def document_counts(self) -> dict[int, int]:
        """Collection id -> how many documents it holds (all of them: operators' figures)."""
        q = select(col(DocumentRow.collection_id), func.count()).group_by(
            col(DocumentRow.collection_id)
        )
        with self.engine.connect() as conn:
            return {int(c): int(n) for c, n in conn.execute(q).all()}

    def ids_digest(self, ids: Any) -> str:
        """SHA-256 (hex) of the ids a ``SELECT id ...`` returns, in ascending order, as
        little-endian 64-bit integers (what hashing an ``IdFilter``'s ids gives)."""
        digest = hashlib.sha256()
        sub = ids.subquery()
        with self.engine.connect() as conn:
            rows = conn.execute(select(sub.c[0]).order_by(sub.c[0]))
            for part in rows.scalars().partitions(65536):
                digest.update(np.array(part, dtype="<i8").tobytes())
        return digest.hexdigest()

    def can_read_any(
        self, collection_id: int, principals: Sequence[str], tenant: str | None = None
    ) -> bool:
        """Whether ``principals`` (or ``public``) may read at least one document of it."""
        q = select(col(DocumentRow.id)).where(col(DocumentRow.collection_id) == collection_id)
        with self.read() as conn:
            return conn.execute(readable(q, principals, tenant).limit(1)).first() is not None

    def bump_generation(self, collection_id: int) -> None:
        """Readers reopen indexes and caches die: after a change not made by a write."""
        with self.session() as s:
            s.execute(next_generation(collection_id, indexes=True))
            s.commit()

    def get_setting(self, collection_id: int, key: str) -> str | None:
        table = CollectionSettingRow.__table__  # type: ignore[attr-defined]
        with self.read() as conn:
            value = conn.execute(
                select(table.c.value).where(
                    table.c.collection_id == collection_id, table.c.key == key
                )
            ).scalar()
        return str(value) if value is not None else None

    def set_setting(self, collection_id: int, key: str, value: str) -> None:
        """Set one of the collection's settings; its generation moves with it, so what was
        cached under the old value (answers, the service's settings) is not used again."""
        with self.session() as s:
            row = s.get(CollectionSettingRow, (collection_id, key))
            if row is None:
                row = CollectionSettingRow(collection_id=collection_id, key=key, value=value)
            else:
                row.value, row.updated_at = value, utcnow()
            s.add(row)
            s.flush()
            s.execute(next_generation(collection_id, indexes=False))
            s.commit()

    def delete_collection(self, name: str) -> None:
        """Every row of the collection (its index files or tables are the caller's)."""
        with self.session() as s:
            row = self._collection_row(s, name)
            cid = row.id
            doc_ids = select(col(DocumentRow.id)).where(col(DocumentRow.collection_id) == cid)
            s.execute(delete(AclRow).where(col(AclRow.document_id).in_(doc_ids)))
            s.execute(delete(ChunkRow).where(col(ChunkRow.collection_id) == cid))
            s.execute(delete(DocumentRow).where(col(DocumentRow.collection_id) == cid))
            s.execute(delete(IngestErrorRow).where(col(IngestErrorRow.collection_id) == cid))
            s.execute(delete(IngestRunRow).where(col(IngestRunRow.collection_id) == cid))
            for table in (CollectionSettingRow, CacheEntryRow, CacheStatsRow):
                s.execute(delete(table).where(col(table.collection_id) == cid))
            s.delete(row)
            s.commit()

    # -- documents --------------------------------------------------------------------------
