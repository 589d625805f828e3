"""``Store``: every read and write of the SQL source of truth goes through here.

Each write that changes what a collection holds runs in one transaction and bumps the
collection's ``generation``; the indexes follow from the ids the write returns and are
reconciled against ``live_chunk_ids`` whenever a collection is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import select as select_module
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlmodel import Session, col

from ragstack.domain import (
    PUBLIC,
    ChunkDraft,
    ChunkInfo,
    CollectionInfo,
    DocumentDraft,
    DocumentInfo,
    DocumentState,
    Principal,
    WriteResult,
)
from ragstack.errors import ConflictError, NotFoundError
from ragstack.extras import require
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
    ServerSecretRow,
    utcnow,
)

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
# Called inside a write's transaction with (connection, removed chunk ids, added chunk ids,
# their vectors, their texts as indexed): how indexes that live in the database commit with it.
IndexWriter = Callable[[Connection, I64, I64, F32, Sequence[str]], None]


def database_url(url: str) -> str:
    """``postgresql://`` (what users write) through psycopg 3, the driver ragstack ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


PG_PING_IDLE_S = 1.0  # a pooled PostgreSQL connection idle this long is pinged on checkout
PG_EF_SEARCH = 100  # pgvector's candidate list per graph search (the embedded: max(64, k))


def _has_input(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket has something to read (or is closed): nothing
    should arrive between statements, short of the server closing it."""
    try:
        return bool(select_module.select([dbapi_conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError, AttributeError):
        return True


def make_engine(url: str) -> Engine:
    url = database_url(url)
    if url.startswith("postgresql"):
        require("psycopg", "the PostgreSQL backend", "postgres")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # SQLAlchemy's pool_pre_ping, but a round trip only for a connection that sat in the
        # pool for PG_PING_IDLE_S or more, or that the server has sent something since its
        # last use (a restart or a terminated backend closes its socket): a busy server
        # reuses each within milliseconds, and a ping per checkout was a round trip per
        # request for nothing. A dead one is replaced: the pool connects anew.
        returned = record.info.get("returned_at")
        if returned is None:  # it has just connected
            return
        if time.monotonic() - returned < PG_PING_IDLE_S and not _has_input(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc

    @event.listens_for(engine, "connect")
    def _pgvector_session(dbapi_conn: Any, _record: Any) -> None:
        # the database indexes' (``store.pgindex``) search settings, once per session rather
        # than a statement per search: filtered HNSW/IVFFlat scans continue until they have
        # found their LIMIT of permitted rows; graph candidate lists of PG_EF_SEARCH (a search
        # for more rows sets its own for its transaction)
        with dbapi_conn.cursor() as cur:
            cur.execute(
                f"SET hnsw.ef_search = {PG_EF_SEARCH}; SET hnsw.iterative_scan = relaxed_order;"
                " SET ivfflat.iterative_scan = relaxed_order; SET ivfflat.probes = 10"
            )
        dbapi_conn.commit()

    return engine


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


@dataclass
class _Pin:
    """The connection ``Store.pinned`` lends this context's reads (checked out on first use)."""

    engine: Engine
    conn: Connection | None = None
    collections: dict[str, CollectionInfo] = field(default_factory=dict)  # rows read in it


_PINNED: ContextVar[_Pin | None] = ContextVar("ragstack_pinned", default=None)


def _autocommit(engine: Engine) -> Connection:
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for read statements on the request path, outside any transaction (on
    PostgreSQL a BEGIN and a ROLLBACK are round trips too): the one ``Store.pinned`` lends
    this context for ``engine``, else one of its own, returned to the pool after."""
    pin = _PINNED.get()
    if pin is not None and pin.engine is engine:
        if pin.conn is None:
            pin.conn = _autocommit(engine)
        yield pin.conn
        return
    with _autocommit(engine) as conn:
        yield conn


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def read(self) -> contextlib.AbstractContextManager[Connection]:
        """``with store.read() as conn``: see ``reading``."""
        return reading(self.engine)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within it, this context's reads on the request path (``read``, the database
        indexes' searches) share one connection, checked out (and, on PostgreSQL, pinged)
        once, at the first read: a search was four checkouts, each a ping round trip and
        the pool's work; and a collection's row is read once (``get_collection``). Only on
        PostgreSQL (SQLite's connections are local), and never across threads: a worker
        thread starts without it and takes connections of its own. Statements that need a
        transaction (settings of their own) still take one."""
        if self.dialect != "postgresql" or _PINNED.get() is not None:
            yield
            return
        pin = _Pin(self.engine)
        token = _PINNED.set(pin)
        try:
            yield
        finally:
            _PINNED.reset(token)
            if pin.conn is not None:
                pin.conn.close()

    def create_schema(self) -> None:
        """Create or migrate the schema to the newest revision (Alembic)."""
        from ragstack.store.migrate import upgrade

        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def secret(self, name: str) -> bytes:
        """A random 32-byte secret every process on this database shares, made on first use
        (the first writer wins a race; everyone reads back the stored one)."""
        table = ServerSecretRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
        if found is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values(name=name, value=secrets.token_hex(32),
                                                      created_at=utcnow()))  # fmt: skip
            except IntegrityError:
                pass  # another process made it first
            with self.engine.connect() as conn:
                found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
        return bytes.fromhex(str(found))

    # -- collections ------------------------------------------------------------------------

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
        pin = _PINNED.get()
        pin = pin if pin is not None and pin.engine is self.engine else None
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
            rows = s.execute(self._readable(q, principals, tenant)).all()
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
            return conn.execute(self._readable(q, principals, tenant).limit(1)).first() is not None

    def bump_generation(self, collection_id: int) -> None:
        """Readers reopen indexes and caches die: after a change not made by a write."""
        with self.session() as s:
            s.execute(_next_generation(collection_id, indexes=True))
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
            s.execute(_next_generation(collection_id, indexes=False))
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
            s.execute(_next_generation(collection_id, indexes=False))
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
                s.execute(_next_generation(collection_id, indexes=True))
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
            s.execute(_next_generation(collection_id, indexes=True))
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
            s.execute(_next_generation(collection_id, indexes=True))
            gone = np.array(removed, dtype=np.int64)
            if index is not None:
                empty = np.empty(0, dtype=np.int64)
                index(s.connection(), gone, empty, np.empty((0, 0), dtype=np.float32), [])
            s.commit()
        return gone

    @staticmethod
    def _readable(q: Any, readers: Sequence[str] | None, tenant: str | None) -> Any:
        """``q`` (over documents) narrowed to what ``readers`` (plus ``public``) may read."""
        if readers is not None:
            who = sorted(set(readers) | {PUBLIC})
            # correlated EXISTS: a page of documents probes the ACL per row and stops at the
            # page's end, instead of first collecting every readable document id
            q = q.where(
                select(col(AclRow.document_id))
                .where(
                    col(AclRow.document_id) == col(DocumentRow.id),
                    col(AclRow.principal).in_(who),
                )
                .exists()
            )
        if tenant is not None:
            q = q.where(or_(col(DocumentRow.tenant).is_(None), col(DocumentRow.tenant) == tenant))
        return q

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
        q = self._readable(q, readers, tenant)
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
        q = self._readable(q, readers, tenant)
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
        """``(ids, vectors, texts as indexed)`` of existing chunks, in id order."""
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
                    out_ids.append(int(cid))
                    vecs.append(emb)
                    texts.append(index_text(section, text))
        matrix = (
            np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(-1, dim)
            if vecs
            else np.empty((0, dim), dtype=np.float32)
        )
        return np.array(out_ids, dtype=np.int64), matrix, texts

    # -- ingest runs --------------------------------------------------------------------------

    def start_run(self, collection_id: int, principal: str, sources: Sequence[str]) -> int:
        with self.session() as s:
            row = IngestRunRow(
                collection_id=collection_id, principal=principal, sources=json.dumps(list(sources))
            )
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self.session() as s:
            s.execute(
                update(IngestRunRow)
                .where(col(IngestRunRow.id) == run_id)
                .values(
                    status=status, counts=json.dumps(counts, sort_keys=True), finished_at=utcnow()
                )
            )
            s.commit()

    def mark_interrupted_runs(self, collection_id: int) -> int:
        """Runs still 'running' when a new one starts were killed: say so."""
        with self.session() as s:
            stale = s.scalars(
                select(col(IngestRunRow.id)).where(
                    col(IngestRunRow.collection_id) == collection_id,
                    col(IngestRunRow.status) == "running",
                )
            ).all()
            if stale:
                s.execute(
                    update(IngestRunRow)
                    .where(col(IngestRunRow.id).in_(stale))
                    .values(status="interrupted", finished_at=utcnow())
                )
                s.commit()
        return len(stale)

    def record_errors(
        self, run_id: int, collection_id: int, errors: Sequence[tuple[str, str, str]]
    ) -> None:
        if not errors:
            return
        with self.session() as s:
            s.execute(
                insert(IngestErrorRow),
                [
                    {
                        "run_id": run_id,
                        "collection_id": collection_id,
                        "uri": u,
                        "kind": k,
                        "reason": r,
                    }
                    for u, k, r in errors
                ],
            )
            s.commit()


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


def _next_generation(collection_id: int, *, indexes: bool) -> Any:
    """The update that bumps a collection's generation (every committed change runs it) and,
    when chunks changed (``indexes``), its index generation too."""
    values: dict[str, Any] = {
        "generation": col(CollectionRow.generation) + 1,
        "updated_at": utcnow(),
    }
    if indexes:
        values["index_generation"] = col(CollectionRow.index_generation) + 1
    return update(CollectionRow).where(col(CollectionRow.id) == collection_id).values(**values)


def index_text(section: str, text: str) -> str:
    """What the lexical index and the embedder see for a chunk: its section path, then its text."""
    return f"{section}\n{text}" if section else text


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
