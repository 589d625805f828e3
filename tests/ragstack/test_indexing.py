"""Indexes in step with SQL: the full audit finds every kind of damage, opening a collection
repairs it, an index written by an older engine is rebuilt, and permitted sets are cached
within a byte budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from indexes import Bm25Index, IdFilter
from ragstack.search import Filters
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from tests.ragstack.conftest import Factory

BOTH_BACKENDS = True


def kb(make_service: Factory, tmp_path: Path) -> Ragstack:
    svc = make_service()
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        body = " ".join(f"word{(i * 7 + j) % 31} topic{i % 3}" for j in range(40))
        (docs / f"note{i}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    svc.ingest(IngestRequest("kb", [SourceSpec(str(docs))], public=True), principal="user:a")
    return svc


def test_audit_passes_then_finds_damage_that_opening_repairs(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = kb(make_service, tmp_path)
    info = svc.collection("kb")
    indexes, _ = svc.open_indexes(info)
    clean = indexes.audit(svc.store)
    assert clean.ok, clean
    assert clean.chunks >= 12 and clean.documents == 12 and clean.damaged_documents == 0
    victims = svc.store.live_chunk_ids(info.id)[:3]
    if indexes.transactional:  # PostgreSQL: tamper with the tables themselves
        with svc.store.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM rs_bm25_post_{info.id} WHERE id = {victims[0]}"))
            conn.execute(text(f"DELETE FROM rs_dense_{info.id} WHERE id = {victims[1]}"))
        damaged = indexes.audit(svc.store)
        assert victims[0] in damaged.postings_mismatches
        assert damaged.missing == {"dense": 1, "bm25": 0}
    else:  # files: what an index that missed a commit, or held other data, looks like
        indexes.lexical.remove(victims[:1])
        vectors = indexes.dense.vectors(victims[1:2])
        indexes.dense.upsert(victims[1:2], -vectors)
        indexes.save()
        damaged = indexes.audit(svc.store)
        assert damaged.missing == {"dense": 0, "bm25": 1}
        assert damaged.vector_mismatches == [int(victims[1])]
        reopened, report = svc.open_indexes(info)  # what a restart does
        assert report.lexical_added == 1 and set(report.seconds) == {"load", "reconcile", "save"}
        assert not reopened.audit(svc.store).missing["bm25"]
    assert not damaged.ok and damaged.damaged_documents >= 1


def test_bm25_audit_recounts_its_statistics() -> None:
    index = Bm25Index()
    index.add(np.arange(5), ["alpha beta", "beta gamma", "gamma", "alpha", "delta alpha"])
    index.remove([1])
    assert index.audit() == []
    assert index.terms([0, 1, 4]) == [{"alpha": 1, "beta": 1}, {}, {"delta": 1, "alpha": 1}]
    index._df[0] += 1  # a document frequency that drifted
    assert index.audit() and "document frequencies" in index.audit()[0]


def test_an_index_written_by_hnswlib_is_rebuilt_from_sql(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = kb(make_service, tmp_path)
    info = svc.collection("kb")
    indexes, _ = svc.open_indexes(info)
    if indexes.transactional:
        return  # PostgreSQL keeps no files
    manifest = indexes.dense_dir / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["params"]["engine"]  # what ragstack before issue 17 wrote (with graph.bin)
    manifest.write_text(json.dumps(old))
    reopened, report = svc.open_indexes(info)
    assert report.rebuilt == ["dense"] and report.dense_added == len(reopened.dense)
    assert reopened.audit(svc.store).ok
    hits = svc.search("kb", "word3 topic1", principals=["user:b"], mode="dense").hits
    assert hits


def test_permitted_sets_are_cached_within_a_byte_budget(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = kb(make_service, tmp_path)
    info = svc.collection("kb")
    filters = Filters.of(meta={"none": "x"})  # a filter every backend answers with ids
    first = svc._permitted(info, ["user:p0"], None, filters)
    assert isinstance(first, IdFilter)
    svc.permitted_cache_bytes = 3 * (first.ids.nbytes + 64)
    sets = [svc._permitted(info, [f"user:p{i}"], None, filters) for i in range(1, 6)]
    assert len(svc._allowed) == 3 and svc._allowed_bytes <= svc.permitted_cache_bytes
    assert svc._permitted(info, ["user:p5"], None, filters) is sets[-1], "the newest stays"
    svc.clear_permitted()
    assert not svc._allowed and svc._allowed_bytes == 0


def test_permitted_sets_are_the_same_whichever_side_sql_starts_from(
    make_service: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a caller whose ACL rows are fewer than the collection's documents is planned
    from the ACL rows (search._from_acl): the same ids as planning from the collection, and
    never a document of another collection that the same principal may read."""
    import ragstack.search as search

    svc = kb(make_service, tmp_path)  # 12 public documents in another collection
    docs = tmp_path / "other"
    docs.mkdir()
    for i in range(30):
        (docs / f"private{i}.md").write_text(f"# Private {i}\n\nsecret plan {i}\n", "utf-8")
    svc.ingest(IngestRequest("other", [SourceSpec(str(docs))], allow=["group:other"]),
               principal="user:a")  # fmt: skip
    open_docs = tmp_path / "open"
    open_docs.mkdir()
    for i in range(2):
        (open_docs / f"open{i}.md").write_text(f"# Open {i}\n\nopen plan {i}\n", "utf-8")
    svc.ingest(IngestRequest("other", [SourceSpec(str(open_docs))], public=True,
                             delete_missing=False), principal="user:a")  # fmt: skip
    info = svc.collection("other")
    sqlite = svc.store.dialect == "sqlite"
    chosen = search._from_acl

    def both(principal: str) -> tuple[bool, np.ndarray, np.ndarray]:
        with svc.store.engine.connect() as conn:
            from_acl = chosen(conn, info.id, sorted({principal, "public"}))
        picked = search.permitted_chunks(svc.store, info.id, [principal]).ids
        monkeypatch.setattr(search, "_from_acl", lambda *_a: not from_acl)
        other = search.permitted_chunks(svc.store, info.id, [principal]).ids
        monkeypatch.setattr(search, "_from_acl", chosen)
        return from_acl, picked, other

    from_acl, picked, other = both("user:nobody")  # 14 public ACL rows, 32 documents here
    assert from_acl is sqlite
    assert np.array_equal(picked, other)
    hits = svc.search("other", "open plan", principals=["user:nobody"], top_k=50).hits
    assert {h.uri.rsplit("/", 1)[-1] for h in hits} == {"open0.md", "open1.md"}
    with svc.store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.id, d.uri FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE d.collection_id = :c"), {"c": info.id}).all()  # fmt: skip
    opened = sorted(int(cid) for cid, uri in rows if "/open/" in uri)
    assert picked.tolist() == opened
    from_acl, picked, other = both("group:other")  # 44 ACL rows: planned from the collection
    assert not from_acl
    assert np.array_equal(picked, other) and picked.size > 2
