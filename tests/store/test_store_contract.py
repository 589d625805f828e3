"""The SQL store's contract, on SQLite and on a real PostgreSQL (``database_url`` runs each
test on both): collections, documents with ACLs and chunks, generations, readable views,
settings, ingest runs, keys, the audit log, jobs, and migrations."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text

from ragstack.access import Audit, Keys
from ragstack.domain import ChunkDraft, DocumentDraft
from ragstack.errors import ConflictError, NotFoundError, UnauthenticatedError
from ragstack.store import Store
from ragstack.store.migrate import current, head, upgrade


def chunk(i: int, text_: str) -> ChunkDraft:
    vec = np.zeros(4, np.float32)
    vec[i % 4] = 1.0
    return ChunkDraft(i, text_, f"h{text_}", "Intro", 1, 0, len(text_), 3, False, vec)


def doc(uri: str, *principals: str, chunks: int = 2, tenant: str | None = None) -> DocumentDraft:
    return DocumentDraft(
        source="fs",
        uri=uri,
        version="v1",
        title=uri.title(),
        mime="text/plain",
        meta={"team": "eng"},
        tenant=tenant,
        principals=frozenset(principals),
        text="body",
        size_bytes=4,
        pii_counts={"EMAIL": 1},
        chunks=[chunk(i, f"{uri} part {i}") for i in range(chunks)],
    )


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)
    s.create_schema()
    return s


def new_collection(store: Store, name: str = "kb") -> int:
    info = store.create_collection(
        name=name, owner="user:alice", tenant=None, embedder_id="hash", dim=4,
        vector_backend="hnsw", pii_mode="mask", pii_ner=False, default_acl=["group:eng"],
    )  # fmt: skip
    return info.id


def test_schema_is_migrated_to_head_and_twice_is_a_no_op(store: Store) -> None:
    assert current(store.engine) == head()
    store.create_schema()
    assert current(store.engine) == head()
    names = set(inspect(store.engine).get_table_names())
    assert {"collections", "documents", "chunks", "acl_entries", "audit_log"} <= names


def test_collections(store: Store) -> None:
    cid = new_collection(store)
    with pytest.raises(ConflictError):
        new_collection(store)
    info = store.get_collection("kb")
    assert (info.id, info.dim, info.default_acl, info.generation) == (cid, 4, ("group:eng",), 0)
    assert [c.name for c in store.list_collections()] == ["kb"]
    with pytest.raises(NotFoundError):
        store.get_collection("nope")
    store.set_setting(cid, "fusion", '{"k": 1}')
    store.set_setting(cid, "fusion", '{"k": 2}')
    assert store.get_setting(cid, "fusion") == '{"k": 2}'
    store.delete_collection("kb")
    assert store.list_collections() == []


def test_documents_chunks_acls_and_generations(store: Store) -> None:
    cid = new_collection(store)
    first = store.write_documents(cid, [doc("a", "user:bob"), doc("b", "group:eng", chunks=3)])
    assert store.get_collection("kb").generation == 1
    assert [len(r.added) for r in first] == [2, 3]
    live = store.live_chunk_ids(cid)
    assert sorted(live.tolist()) == sorted(np.concatenate([r.added for r in first]).tolist())
    # a replaced document gets new chunk ids; the old ones are reported removed, never reused
    again = store.write_documents(cid, [doc("a", "user:carol", chunks=1)])
    assert set(again[0].removed.tolist()) == set(first[0].added.tolist())
    assert not set(again[0].added.tolist()) & set(live.tolist())
    assert store.get_collection("kb").generation == 2
    ids, vectors, texts = store.chunk_payloads(store.live_chunk_ids(cid).tolist(), 4)
    assert len(ids) == 4 and vectors.shape == (4, 4) and texts[0].startswith("Intro\n")
    # vectors of another width than asked (a re-embed switched the model after the caller
    # read the collection): a clear conflict, never a reshape into the wrong rows
    with pytest.raises(ConflictError, match="re-embedded"):
        store.chunk_payloads(store.live_chunk_ids(cid).tolist(), 2)
    from ragstack.health import ann_recall

    assert ann_recall(store, None, cid, 2) == {
        "recall_at_10": None,
        "sample": 0,
        "chunks": 4,
        "changing": True,
    }
    # readable views: bob lost "a"; carol has it; eng reads "b"
    assert [d.uri for d in store.list_documents(cid, readers=["user:bob"])] == []
    assert [d.uri for d in store.list_documents(cid, readers=["user:carol"])] == ["a"]
    assert store.readable_documents(["group:eng"]) == {cid: 1}
    assert store.can_read_any(cid, ["user:carol"]) and not store.can_read_any(cid, ["user:x"])
    b = store.list_documents(cid, readers=["group:eng"])[0]
    with pytest.raises(NotFoundError):
        store.get_document(cid, b.id, readers=["user:carol"])
    assert store.get_document(cid, b.id, readers=["group:eng"]).principals == ("group:eng",)
    assert [c.ordinal for c in store.list_chunks(b.id)] == [0, 1, 2]
    assert store.count_documents(cid) == (2, 4)
    assert store.document_versions(cid)["b"].version == "v1"
    assert store.chunk_groups(cid, "team") == {int(i): "eng" for i in store.live_chunk_ids(cid)}
    removed = store.delete_documents(cid, [b.id])
    assert len(removed) == 3 and store.count_documents(cid) == (1, 1)
    assert store.get_collection("kb").generation == 3


def test_tenants_narrow_what_is_readable(store: Store) -> None:
    cid = new_collection(store)
    store.write_documents(cid, [doc("t1", "public", tenant="acme"), doc("t2", "public"),
                                doc("t3", "public", tenant="other")])  # fmt: skip
    seen = [d.uri for d in store.list_documents(cid, readers=["user:x"], tenant="acme")]
    assert seen == ["t1", "t2"]


def test_ingest_runs_and_errors(store: Store) -> None:
    cid = new_collection(store)
    run = store.start_run(cid, "user:alice", ["/docs"])
    store.record_errors(run, cid, [("bad.pdf", "corrupt", "not a PDF")])
    assert store.mark_interrupted_runs(cid) == 1
    run2 = store.start_run(cid, "user:alice", ["/docs"])
    store.finish_run(run2, "completed", {"documents": 1})
    assert store.run_counts(cid) == {"interrupted": 1, "completed": 1}


def test_concurrent_writers_never_share_chunk_ids(store: Store) -> None:
    cid = new_collection(store)
    added: list[list[int]] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(5):
            res = store.write_documents(cid, [doc(f"w{n}-{i}", "public", chunks=3)])
            with lock:
                added.append(res[0].added.tolist())

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for ids in added for i in ids]
    assert len(flat) == len(set(flat)) == 60
    assert sorted(store.live_chunk_ids(cid).tolist()) == sorted(flat)
    assert store.get_collection("kb").generation == 20


def test_keys_and_audit(store: Store) -> None:
    keys = Keys(store)
    info, secret = keys.create("user:alice", groups=["group:eng"], role="writer")
    assert keys.authenticate(secret).principals == ("user:alice", "group:eng")
    keys.revoke(info.key_id)
    with pytest.raises(UnauthenticatedError):
        keys.authenticate(secret)
    audit = Audit(store, buffered=True)
    for i in range(30):
        audit.record(route="/v1/search", action="search", status=200, latency_ms=float(i),
                     key_id=info.key_id, principals=["user:alice"], collection="kb",
                     query=f"q{i}", chunk_ids=[i, 2**40 + i])  # fmt: skip
    rows = audit.entries(limit=5, action="search")
    assert [r.query for r in rows] == ["q29", "q28", "q27", "q26", "q25"]
    assert rows[0].chunk_ids == (29, 2**40 + 29)
    older = audit.entries(limit=100, before_id=rows[-1].id)
    assert len(older) == 25
    audit.close()


def test_a_database_made_before_migrations_is_stamped_then_upgraded(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine, "0001")
    with store.engine.begin() as conn:  # what create_all left behind: tables, no version
        conn.execute(text("DROP TABLE alembic_version"))
    store.create_schema()
    assert current(store.engine) == head()
    columns = {c["name"] for c in inspect(store.engine).get_columns("ingest_jobs")}
    assert {"owner", "heartbeat_at"} <= columns


def test_job_leases_let_processes_share_one_database(database_url: str, tmp_path: Path) -> None:
    """Two API processes (two ``Jobs``) on one database: starting the second does not mark
    the first one's live job interrupted; a job whose owner stopped renewing it is."""
    from datetime import UTC, datetime, timedelta

    from ragstack.app import build
    from ragstack.config import Settings
    from ragstack.jobs import Jobs
    from ragstack.store.models import JobRow

    svc = build(Settings(data_dir=tmp_path / "data", embedder="hashing",
                         database_url=database_url))  # fmt: skip
    now = datetime.now(UTC)
    with svc.store.session() as s:
        s.add(JobRow(id="live", collection="kb", principal="user:a", status="running",
                     owner="host:1:aaaa", heartbeat_at=now))  # fmt: skip
        s.add(JobRow(id="dead", collection="kb", principal="user:a", status="running",
                     owner="host:2:bbbb", heartbeat_at=now - timedelta(minutes=5)))  # fmt: skip
        s.add(JobRow(id="legacy", collection="kb", principal="user:a", status="queued"))
        s.commit()
    jobs = Jobs(svc, lease_s=2.0)
    try:
        assert jobs.get("live").status == "running"
        assert jobs.get("dead").status == "interrupted"
        assert jobs.get("legacy").status == "interrupted"
        # the live one's owner stops renewing: after the lease, a read reports it interrupted
        time.sleep(2.5)
        assert jobs.get("live").status == "interrupted"
        # a job of a live Jobs is renewed, so another process never expires it
        with svc.store.session() as s:
            s.add(JobRow(id="mine", collection="kb", principal="user:a", status="running",
                         owner=jobs.owner, heartbeat_at=datetime.now(UTC)))  # fmt: skip
            s.commit()
        other = Jobs(svc, lease_s=2.0)
        time.sleep(3.0)
        assert other.get("mine").status == "running"
        other.shutdown()
    finally:
        jobs.shutdown()


def test_migration_0004_keeps_every_row_and_strips_acl_from_versions(database_url: str) -> None:
    """A database at 0003 with documents, chunks and ACL rows: 0004 rebuilds ``documents``
    (namespaces) without cascading into its children, and versions lose their ACL suffix."""
    store = Store(database_url)
    upgrade(store.engine, "0003")
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO collections (id, name, owner, embedder_id, dim, vector_backend, "
            "pii_mode, pii_ner, pii_salt, default_acl, generation, created_at, updated_at) "
            "VALUES (1, 'kb', 'user:a', 'hash', 4, 'hnsw', 'mask', false, 's', '[]', 7, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
        conn.execute(text(
            "INSERT INTO documents (id, collection_id, source, uri, version, title, mime, meta, "
            "text, size_bytes, chunk_count, flagged_chunks, pii_counts, created_at, updated_at) "
            "VALUES (1, 1, 'fs', 'file:///a.md', 'sha256:abc+acl:0123456789abcdef', 'A', "
            "'text/markdown', '{}', 'body', 4, 1, 0, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
        conn.execute(text(
            "INSERT INTO chunks (id, collection_id, document_id, ordinal, text, text_hash, "
            "section, char_start, char_end, token_count, instruction_like, embedding) "
            "VALUES (1, 1, 1, 0, 'body', 'h', '', 0, 4, 1, false, :e)"
        ), {"e": b"\0" * 16})  # fmt: skip
        conn.execute(text("INSERT INTO acl_entries (document_id, principal) VALUES (1, 'public')"))
    store.create_schema()
    assert current(store.engine) == head()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM acl_entries")).scalar() == 1
        version, namespace = conn.execute(text("SELECT version, namespace FROM documents")).one()
        index_generation = conn.execute(text("SELECT index_generation FROM collections")).scalar()
    assert (version, namespace, index_generation) == ("sha256:abc", "", 7)
    # the same URI may now exist once per namespace, and foreign keys are on again
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO documents (id, collection_id, source, namespace, uri, version, title, "
            "mime, meta, text, size_bytes, chunk_count, flagged_chunks, pii_counts, created_at, "
            "updated_at) VALUES (2, 1, 'api', '-/user:b', 'file:///a.md', 'v', 'A', 'text/plain', "
            "'{}', '', 0, 0, 0, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    with store.engine.begin() as conn, pytest.raises(Exception, match=r"(?i)foreign|constraint"):
        conn.execute(text("INSERT INTO acl_entries (document_id, principal) VALUES (999, 'x')"))


def test_server_secrets_are_made_once_and_shared(database_url: str) -> None:
    one, two = Store(database_url), Store(database_url)
    one.create_schema()
    first = one.secret("sessions")
    assert len(first) == 32
    assert two.secret("sessions") == first  # another process reads the same
    assert one.secret("ids") != first


def test_migration_0006_adds_request_ids_to_the_audit_log(database_url: str) -> None:
    """A database at 0005 with audit rows: 0006 keeps them (request id NULL), new rows carry
    one and are found by it, and the schema then matches the models exactly."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    from ragstack.access import Audit

    store = Store(database_url)
    upgrade(store.engine, "0005")
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_log (at, principals, route, action, chunk_ids, status, latency_ms,"
            " detail) VALUES (CURRENT_TIMESTAMP, '[]', '/v1/search', 'search', '[]', 200, 1.5,"
            " '{}')"
        ))  # fmt: skip
    upgrade(store.engine)
    assert current(store.engine) == head()
    audit = Audit(store)
    audit.record(route="/v1/search", action="search", status=200, latency_ms=2.0,
                 request_id="req-0006")  # fmt: skip
    old, new = sorted(audit.entries(), key=lambda e: e.id)
    assert (old.route, old.request_id, new.request_id) == ("/v1/search", None, "req-0006")
    assert [e.id for e in audit.entries(request_id="req-0006")] == [new.id]
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_migration_0007_names_dense_indexes_and_adds_shadow_vectors(database_url: str) -> None:
    """A database at 0006 with a collection and a chunk: 0007 keeps them (the dense index
    named ``dense``), adds ``chunk_vectors`` (gone with their chunk) and ``reembed_runs``,
    and the schema then matches the models exactly."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    from ragstack.store.shadow import ShadowStore

    store = Store(database_url)
    upgrade(store.engine, "0006")
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO collections (id, name, owner, embedder_id, dim, vector_backend, "
            "pii_mode, pii_ner, pii_salt, default_acl, generation, index_generation, created_at,"
            " updated_at) VALUES (1, 'kb', 'user:a', 'hash', 4, 'hnsw', 'mask', false, 's', "
            "'[]', 3, 3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    upgrade(store.engine)
    cid = 1
    store.write_documents(cid, [doc("a.md", "public", chunks=2)])
    assert current(store.engine) == head()
    info = store.get_collection("kb")
    assert info.dense_name == "dense" and store.count_documents(cid) == (1, 2)
    shadow = ShadowStore(store)
    run = shadow.begin(collection_id=cid, from_model="hash", from_dense="dense", model_id="m2",
                       model_path=None, dim=2, owner="test")  # fmt: skip
    assert (run.status, run.dense_name) == ("running", f"dense-{run.id}")
    ids = store.live_chunk_ids(cid)
    assert [r[0] for r in shadow.missing(cid, "m2", after=0, limit=10)] == ids.tolist()
    vecs = np.eye(2, dtype=np.float32)
    shadow.write(run.id, cid, "m2", ids, ["ha.md part 0", "ha.md part 1"], vecs, embedded=2,
                 reused=0)  # fmt: skip
    assert shadow.counts(cid, "m2") == (2, 2) and shadow.get(run.id).done == 2
    assert set(shadow.reusable(cid, "m2", ["ha.md part 1"])) == {"ha.md part 1"}
    store.write_documents(cid, [doc("a.md", "public", chunks=1)])  # replaced: chunks go
    assert shadow.counts(cid, "m2") == (1, 0)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
