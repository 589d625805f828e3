"""The dense and lexical indexes of one collection, kept in step with SQL.

SQL is the source of truth and chunk ids are never reused, so the indexes agree with SQL
exactly when their id sets equal the set of chunk ids SQL holds for the collection. Opening
a collection reconciles: ids SQL has and an index lacks are added back from the vectors and
texts stored in SQL (no re-embedding), ids an index has and SQL lacks are removed. An index
directory that cannot be read is rebuilt from SQL. A crash at any point of an ingest
therefore costs at most the work since the last save, never consistency.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from indexes import (
    Bm25Index,
    CorruptIndexError,
    ExactIndex,
    HnswIndex,
    IdFilter,
    IvfPqIndex,
    LexicalIndex,
    ManifestMismatchError,
    VectorIndex,
    open_vector_index,
)
from ragstack.domain import CollectionInfo
from ragstack.errors import ConflictError, UnavailableError
from ragstack.store import Store
from ragstack.store.writes import IndexWriter

log = logging.getLogger(__name__)
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def new_vector_index(backend: str, dim: int) -> VectorIndex:
    if backend == "hnsw":
        return HnswIndex(dim)
    if backend == "ivfpq":
        return IvfPqIndex(dim)
    if backend == "exact":
        return ExactIndex(dim)
    raise ConflictError(f"unknown vector backend {backend!r}")


@dataclass
class ReconcileReport:
    dense_added: int = 0
    dense_removed: int = 0
    lexical_added: int = 0
    lexical_removed: int = 0
    rebuilt: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # load, reconcile, save

    @property
    def changed(self) -> bool:
        return bool(
            self.dense_added
            or self.dense_removed
            or self.lexical_added
            or self.lexical_removed
            or self.rebuilt
        )


@dataclass
class AuditReport:
    """Every chunk SQL holds, compared in full with what each index holds for it."""

    collection: str
    documents: int
    chunks: int
    half_written_documents: list[int]  # SQL: chunk rows that disagree with the document
    missing: dict[str, int]  # chunks an index lacks, per index
    extra: dict[str, int]  # ids an index has and SQL does not, per index
    vector_mismatches: list[int]  # the dense index holds another vector
    postings_mismatches: list[int]  # BM25 holds other terms or frequencies
    lexical_problems: list[str]  # BM25's own statistics against a recount
    damaged_documents: int  # documents with any chunk missing or wrong in any index

    @property
    def ok(self) -> bool:
        return not (
            self.half_written_documents
            or any(self.missing.values())
            or any(self.extra.values())
            or self.vector_mismatches
            or self.postings_mismatches
            or self.lexical_problems
            or self.damaged_documents
        )


@dataclass
class CheckReport:
    collection: str
    sql_chunks: int
    dense_count: int
    lexical_count: int
    missing_dense: list[int]
    extra_dense: list[int]
    missing_lexical: list[int]
    extra_lexical: list[int]
    vector_mismatches: list[int]
    sampled: int
    recovered: ReconcileReport

    @property
    def ok(self) -> bool:
        return not (
            self.missing_dense
            or self.extra_dense
            or self.missing_lexical
            or self.extra_lexical
            or self.vector_mismatches
        )


def in_database(store: Store) -> bool:
    """Whether collections keep their indexes in the database (PostgreSQL, shared by every
    process) rather than in files next to it (SQLite, one machine)."""
    return store.dialect == "postgresql"


@contextmanager
def collection_lock(
    store: Store, info: CollectionInfo, root: Path, *, kind: str = "writer"
) -> Iterator[None]:
    """One writer per collection: a file lock for files, else a PostgreSQL advisory lock
    held by one connection (any machine; released if the process dies). ``kind``
    ``reembed``: the lock of a collection's live re-embed (one at a time), apart from the
    writers'."""
    if not in_database(store):
        with writer_lock(root, ".lock" if kind == "writer" else f".{kind}.lock"):
            yield
        return
    key = (0x7261_0000_0000 if kind == "writer" else 0x7262_0000_0000) + int(info.id)
    with store.engine.connect() as conn:
        if not conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar():
            conn.rollback()
            raise UnavailableError(
                f"another process is {'writing to' if kind == 'writer' else 're-embedding'} "
                f"collection {info.name!r}; try again when it ends"
            )
        conn.commit()
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
            conn.commit()


def drop_indexes(store: Store, info: CollectionInfo, root: Path) -> None:
    """Delete a collection's indexes (its files, or its tables); SQL rows stay."""
    import shutil

    if in_database(store):
        from ragstack.store.pgindex import drop_collection_tables

        with store.engine.begin() as conn:
            drop_collection_tables(conn, info.id)
        for key in [k for k in _created if k[:2] == (store.url, info.id)]:
            _created.discard(key)
        return
    for dense in root.glob("dense*") if root.is_dir() else ():
        shutil.rmtree(dense, ignore_errors=True)
    shutil.rmtree(root / "bm25", ignore_errors=True)


def drop_dense(store: Store, info: CollectionInfo, root: Path, dense_name: str) -> None:
    """Delete one dense index of a collection (one a live re-embed replaced or abandoned)."""
    if dense_name == info.dense_name:
        raise ConflictError(f"{dense_name} is the collection's live dense index")
    if in_database(store):
        from ragstack.store.pgindex import drop_dense_table

        with store.engine.begin() as conn:
            drop_dense_table(conn, info.id, dense_name)
        _created.discard((store.url, info.id, dense_name))
        return
    import shutil

    shutil.rmtree(root / dense_name, ignore_errors=True)


def index_bytes(store: Store, info: CollectionInfo, root: Path) -> dict[str, int]:
    """Size of each index: its files, or its tables with their indexes."""
    if not in_database(store):
        from ragstack.health import dir_bytes

        return {"dense": dir_bytes(root / info.dense_name), "bm25": dir_bytes(root / "bm25")}
    from ragstack.store.pgindex import collection_tables

    names = collection_tables(info.id, info.dense_name)
    out = {}
    with store.engine.connect() as conn:
        for kind, tables in names.items():
            out[kind] = sum(
                int(conn.exec_driver_sql(
                    "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)", (t,)
                ).scalar() or 0)
                for t in tables
            )  # fmt: skip
    return out


# (database, collection, dense index name) whose index tables exist
_created: set[tuple[str, int, str]] = set()


@contextmanager
def writer_lock(root: Path, name: str = ".lock") -> Iterator[None]:
    """One writer per collection across processes (released by the OS if the process dies)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UnavailableError(
                f"another process is writing to this collection ({root}); try again when it ends"
            ) from exc
        yield
    finally:
        os.close(fd)


class CollectionIndexes:
    def __init__(
        self, root: Path, info: CollectionInfo, dense: VectorIndex, lexical: LexicalIndex
    ) -> None:
        self.root = root
        self.info = info
        self.dense = dense
        self.lexical = lexical

    @property
    def transactional(self) -> bool:
        """Indexes in the database: written inside the SQL transaction (``sql_writer``)."""
        return hasattr(self.dense, "add_in")

    @property
    def sql_writer(self) -> IndexWriter | None:
        """What ``Store.write_documents`` / ``delete_documents`` call inside their transaction
        (database indexes), or ``None`` (files follow the commit through ``apply``)."""
        if not self.transactional:
            return None
        dense, lexical = cast(Any, self.dense), cast(Any, self.lexical)

        def write(conn: Any, removed: I64, added: I64, vectors: F32, texts: Sequence[str]) -> None:
            if removed.size:
                dense.remove_in(conn, removed)
                lexical.remove_in(conn, removed)
            if added.size:
                dense.add_in(conn, added, vectors)
                lexical.add_in(conn, added, texts)

        return write

    @classmethod
    def open_in_database(
        cls, root: Path, info: CollectionInfo, store: Store, *, repair: bool
    ) -> tuple[CollectionIndexes, ReconcileReport]:
        """The collection's tables (made on first use); ``repair`` (writers, checks)
        reconciles them with the chunks like files are: readers never pay for that."""
        from ragstack.store.pgindex import PgBm25Index, PgVectorIndex, create_collection_tables

        dense = PgVectorIndex(store.engine, info.id, info.dim, info.vector_backend, info.dense_name)
        lexical = PgBm25Index(store.engine, info.id)
        if (store.url, info.id, info.dense_name) not in _created:
            create_collection_tables(store.engine, dense, lexical)
            _created.add((store.url, info.id, info.dense_name))
        indexes, report = cls(root, info, dense, lexical), ReconcileReport()
        if repair:
            indexes.reconcile(store, report)
            indexes.save()
        return indexes, report

    @property
    def dense_dir(self) -> Path:
        return self.root / self.info.dense_name

    @property
    def lexical_dir(self) -> Path:
        return self.root / "bm25"

    @classmethod
    def open(
        cls, root: Path, info: CollectionInfo, store: Store, *, repair: bool = True
    ) -> tuple[CollectionIndexes, ReconcileReport]:
        if in_database(store):
            return cls.open_in_database(root, info, store, repair=repair)
        started = time.perf_counter()
        report = ReconcileReport()
        dense_dir, lexical_dir = root / info.dense_name, root / "bm25"
        dense: VectorIndex
        try:
            dense = open_vector_index(dense_dir, dim=info.dim, metric="cosine")
            if dense.backend != info.vector_backend:
                raise ManifestMismatchError(
                    "backend", info.vector_backend, dense.backend, str(dense_dir)
                )
        except CorruptIndexError:
            if dense_dir.exists():
                report.rebuilt.append("dense")
                log.warning("dense index of %s unreadable: rebuilding from SQL", info.name)
            dense = new_vector_index(info.vector_backend, info.dim)
        except ManifestMismatchError as exc:
            raise ConflictError(f"collection {info.name!r}: {exc}") from exc
        try:
            lexical = Bm25Index.load(lexical_dir)
        except CorruptIndexError:
            if lexical_dir.exists():
                report.rebuilt.append("bm25")
                log.warning("BM25 index of %s unreadable: rebuilding from SQL", info.name)
            lexical = Bm25Index()
        indexes = cls(root, info, dense, lexical)
        loaded = time.perf_counter()
        indexes.reconcile(store, report)
        reconciled = time.perf_counter()
        if report.changed:
            indexes.save()
        report.seconds = {
            "load": loaded - started,
            "reconcile": reconciled - loaded,
            "save": time.perf_counter() - reconciled,
        }
        return indexes, report

    def reconcile(self, store: Store, report: ReconcileReport) -> None:
        sql_ids = store.live_chunk_ids(self.info.id)
        d_missing, d_extra = _diff(sql_ids, self.dense.ids())
        l_missing, l_extra = _diff(sql_ids, self.lexical.ids())
        report.dense_removed += self.dense.remove(d_extra)
        report.lexical_removed += self.lexical.remove(l_extra)
        need = np.union1d(d_missing, l_missing)
        for start in range(0, need.size, 5000):
            ids, vectors, texts = store.chunk_payloads(
                need[start : start + 5000].tolist(), self.info.dim
            )
            dense_mask = np.isin(ids, d_missing)
            if dense_mask.any():
                self.dense.add(ids[dense_mask], vectors[dense_mask])
                report.dense_added += int(dense_mask.sum())
            lex_mask = np.isin(ids, l_missing)
            if lex_mask.any():
                self.lexical.add(
                    ids[lex_mask], [t for t, m in zip(texts, lex_mask, strict=True) if m]
                )
                report.lexical_added += int(lex_mask.sum())

    def apply(
        self, removed: I64, added: I64, vectors: npt.NDArray[np.float32], texts: Sequence[str]
    ) -> None:
        """Mirror one committed SQL write: drop ``removed`` ids, index ``added`` ones
        (database indexes were written inside that write's transaction already)."""
        if self.transactional:
            return
        if removed.size:
            self.dense.remove(removed)
            self.lexical.remove(removed)
        if added.size:
            self.dense.add(added, vectors)
            self.lexical.add(added, texts)

    def save(self) -> None:
        self.dense.save(self.dense_dir)
        self.lexical.save(self.lexical_dir)

    def check(self, store: Store, recovered: ReconcileReport, sample: int = 200) -> CheckReport:
        """Compare id sets with SQL and, on a sample, the stored vectors with what the
        dense index returns as each vector's own nearest neighbour."""
        sql_ids = store.live_chunk_ids(self.info.id)
        d_missing, d_extra = _diff(sql_ids, self.dense.ids())
        l_missing, l_extra = _diff(sql_ids, self.lexical.ids())
        rng = np.random.default_rng(0)
        picked = (
            rng.choice(sql_ids, size=min(sample, sql_ids.size), replace=False)
            if sql_ids.size
            else sql_ids
        )
        mismatches: list[int] = []
        if picked.size and not d_missing.size:
            ids, vectors, _texts = store.chunk_payloads(picked.tolist(), self.info.dim)
            for cid, vec in zip(ids.tolist(), vectors, strict=True):
                res = self.dense.search(vec[None, :], 1, IdFilter([cid]))
                if int(res.ids[0, 0]) != cid or float(res.scores[0, 0]) < 0.999:
                    mismatches.append(cid)
        return CheckReport(
            collection=self.info.name,
            sql_chunks=int(sql_ids.size),
            dense_count=len(self.dense),
            lexical_count=len(self.lexical),
            missing_dense=d_missing.tolist()[:20],
            extra_dense=d_extra.tolist()[:20],
            missing_lexical=l_missing.tolist()[:20],
            extra_lexical=l_extra.tolist()[:20],
            vector_mismatches=mismatches[:20],
            sampled=int(picked.size),
            recovered=recovered,
        )

    def audit(self, store: Store) -> AuditReport:
        """Compare every chunk SQL holds with every index, in full: ids both ways, each
        chunk's vector, each chunk's BM25 terms and frequencies (against the analyzer run on
        its text again) and BM25's statistics against a recount; and, in SQL, documents whose
        chunk rows are not all there. Slower than ``check`` (it reads every chunk): for
        crash tests and ``index check --deep``."""
        from sqlalchemy import func, select

        from ragstack.store.models import ChunkRow, DocumentRow

        c, d = ChunkRow.__table__, DocumentRow.__table__  # type: ignore[attr-defined]
        with store.engine.connect() as conn:
            docs = {int(i): int(n) for i, n in conn.execute(
                select(d.c.id, d.c.chunk_count).where(d.c.collection_id == self.info.id)
            )}  # fmt: skip
            owner = {int(i): int(doc) for i, doc in conn.execute(
                select(c.c.id, c.c.document_id).where(c.c.collection_id == self.info.id)
            )}  # fmt: skip
            rows: dict[int, int] = dict(conn.execute(
                select(c.c.document_id, func.count())
                .where(c.c.collection_id == self.info.id)
                .group_by(c.c.document_id)
            ).all())  # fmt: skip
        half = sorted(i for i, n in docs.items() if rows.get(i, 0) != n)
        sql_ids = np.array(sorted(owner), dtype=np.int64)
        d_missing, d_extra = _diff(sql_ids, self.dense.ids())
        l_missing, l_extra = _diff(sql_ids, self.lexical.ids())
        bad: set[int] = set(d_missing.tolist()) | set(l_missing.tolist())
        vec_bad: list[int] = []
        post_bad: list[int] = []
        analyzer = cast(Any, self.lexical).analyzer
        have_dense = np.setdiff1d(sql_ids, d_missing, assume_unique=True)
        have_lexical = set(np.setdiff1d(sql_ids, l_missing, assume_unique=True).tolist())
        for start in range(0, have_dense.size, 5000):
            ids, vectors, texts = store.chunk_payloads(
                have_dense[start : start + 5000].tolist(), self.info.dim
            )
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            want = vectors / np.where(norms > 0, norms, 1.0)
            got = self.dense.vectors(ids)
            close = np.abs(got - want).max(axis=1) <= 1e-5
            vec_bad += ids[~close].tolist()
            lexical_ids = [i for i in ids.tolist() if i in have_lexical]
            held = self.lexical.terms(lexical_ids)
            text_of = dict(zip(ids.tolist(), texts, strict=True))
            for cid, terms in zip(lexical_ids, held, strict=True):
                if terms != dict(Counter(analyzer(text_of[cid]))):
                    post_bad.append(cid)
        # chunks the dense index lacks were never compared with BM25: compare them too
        for start in range(0, d_missing.size, 5000):
            part = [i for i in d_missing[start : start + 5000].tolist() if i in have_lexical]
            ids, _vectors, texts = store.chunk_payloads(part, self.info.dim)
            for cid, terms, text in zip(ids.tolist(), self.lexical.terms(ids), texts, strict=True):
                if terms != dict(Counter(analyzer(text))):
                    post_bad.append(cid)
        bad |= set(vec_bad) | set(post_bad)
        lexical_problems = self.lexical.audit() if hasattr(self.lexical, "audit") else []
        return AuditReport(
            collection=self.info.name,
            documents=len(docs),
            chunks=int(sql_ids.size),
            half_written_documents=half[:20],
            missing={"dense": int(d_missing.size), "bm25": int(l_missing.size)},
            extra={"dense": int(d_extra.size), "bm25": int(l_extra.size)},
            vector_mismatches=vec_bad[:20],
            postings_mismatches=post_bad[:20],
            lexical_problems=lexical_problems,
            damaged_documents=len({owner[i] for i in bad} | set(half)),
        )


def _diff(sql_ids: I64, index_ids: I64) -> tuple[I64, I64]:
    """(ids SQL has and the index lacks, ids the index has and SQL lacks)."""
    return (
        np.setdiff1d(sql_ids, index_ids, assume_unique=True),
        np.setdiff1d(index_ids, sql_ids, assume_unique=True),
    )
