"""Permission changes take effect, from whatever source, on both backends: an ACL or tenant
change alone rewrites the ACL rows (nothing re-parsed or re-embedded), moves the generation
(not the index generation) and is in force for the very next search and answer, cached or
not. Narrowing is never skipped as "unchanged"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragstack.answering import AnswerRequest
from ragstack.errors import InputError, NotFoundError
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from tests.ragstack.conftest import Factory

BOTH_BACKENDS = True


def docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leave.md").write_text("# Leave\n\nEmployees get 25 vacation days a year.\n")
    (folder / "laptops.md").write_text("# Laptops\n\nLaptops are replaced every three years.\n")
    return folder


def ingest(svc: Ragstack, folder: Path, **kw: object) -> dict[str, int]:
    request = IngestRequest("kb", [SourceSpec(str(folder))], **kw)  # type: ignore[arg-type]
    summary = svc.ingest(request, principal="user:owner")
    return {**summary.counts(), "embedded": summary.chunks_embedded}


def uris(svc: Ragstack, who: str, query: str = "vacation days laptops") -> set[str]:
    hits = svc.search("kb", query, principals=[who], mode="bm25").hits
    return {Path(h.uri).name for h in hits}


def test_re_ingest_with_narrower_allow_revokes_without_re_embedding(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = make_service()
    folder = docs(tmp_path / "docs")
    first = ingest(svc, folder, public=True)
    assert first["ingested"] == 2
    assert uris(svc, "user:bob") == {"leave.md", "laptops.md"}
    before = svc.collection("kb")

    narrowed = ingest(svc, folder, allow=["user:alice"])
    assert narrowed["acl_updated"] == 2 and narrowed["unchanged"] == 0
    assert narrowed["embedded"] == 0 and narrowed["updated"] == 0, "nothing re-parsed"
    after = svc.collection("kb")
    assert after.generation > before.generation
    assert after.index_generation == before.index_generation, "indexes untouched"
    assert uris(svc, "user:bob") == set(), "revoked for the very next search"
    assert uris(svc, "user:alice") == {"leave.md", "laptops.md"}

    again = ingest(svc, folder, allow=["user:alice"])
    assert again["unchanged"] == 2 and again["acl_updated"] == 0
    widened = ingest(svc, folder, allow=["user:alice", "group:staff"])
    assert widened["acl_updated"] == 2
    assert uris(svc, "group:staff") == {"leave.md", "laptops.md"}


def test_a_sidecar_or_tenant_change_is_an_acl_change(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    folder = docs(tmp_path / "docs")
    ingest(svc, folder, public=True)
    (folder / "leave.md.acl.json").write_text(json.dumps({"allow": ["group:hr"]}))
    changed = ingest(svc, folder, public=True)
    assert changed["acl_updated"] == 1 and changed["embedded"] == 0
    assert uris(svc, "user:bob") == {"laptops.md"}
    assert uris(svc, "group:hr") == {"leave.md", "laptops.md"}

    moved = ingest(svc, folder, public=True, tenant="acme")
    assert moved["acl_updated"] == 2, "both move to tenant acme (the sidecar names none)"
    hits = svc.search("kb", "laptops", principals=["user:bob"], tenant="other", mode="bm25").hits
    assert hits == [], "another tenant's reader no longer sees it"
    hits = svc.search("kb", "laptops", principals=["user:bob"], tenant="acme", mode="bm25").hits
    assert [Path(h.uri).name for h in hits] == ["laptops.md"]
    tenantless = svc.search("kb", "laptops", principals=["user:bob"], tenant="", mode="bm25")
    assert tenantless.hits == [], "a tenant-less caller reads tenant-less documents only"


def test_set_document_acl_is_in_force_for_the_next_cached_answer(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = make_service()
    ingest(svc, docs(tmp_path / "docs"), public=True)
    question = AnswerRequest("kb", "How many vacation days do employees get?", ("user:bob",))
    first = svc.ask(question)
    assert not first.abstained and "25" in first.answer
    assert svc.ask(question).cached, "a repeat is served from the cache"

    (leave,) = [d for d in svc.documents("kb") if d.uri.endswith("leave.md")]
    with pytest.raises(InputError):
        svc.set_document_acl("kb", leave.id, allow=["user:alice"], public=True)
    changed = svc.set_document_acl("kb", leave.id, allow=["user:alice"])
    assert changed.principals == ("user:alice",)
    with pytest.raises(NotFoundError):  # a caller who cannot read it cannot change it
        svc.set_document_acl("kb", leave.id, public=True, principals=["user:bob"])

    after = svc.ask(question)
    assert not after.cached, "the cached answer cited a document bob may no longer read"
    assert all(not s["uri"].endswith("leave.md") for s in after.sources)
    assert "25" not in after.answer
    assert svc.ask(AnswerRequest("kb", question.question, ("user:alice",))).sources


def test_writes_to_hidden_documents_change_nothing_a_caller_gets(
    make_service: Factory, tmp_path: Path
) -> None:
    """Cache hits, BM25 scores and the answer of a reader do not move when documents it may
    not read are added, changed or deleted (they move the collection's generation)."""
    svc = make_service()
    folder = docs(tmp_path / "docs")
    ingest(svc, folder, public=True)
    private = tmp_path / "private"
    private.mkdir()
    question = AnswerRequest("kb", "How many vacation days do employees get?", ("user:bob",))
    first = svc.ask(question)
    before = svc.search("kb", "vacation days", principals=["user:bob"], mode="bm25").hits
    generation = svc.collection("kb").generation
    for text in ("vacation days vacation days", "more vacation policy days", ""):
        if text:
            (private / "hidden.md").write_text(f"# Hidden\n\n{text}\n")
        else:
            (private / "hidden.md").unlink()
        svc.ingest(IngestRequest("kb", [SourceSpec(str(private))], allow=["user:alice"]),
                   principal="user:owner")  # fmt: skip
        after = svc.search("kb", "vacation days", principals=["user:bob"], mode="bm25").hits
        assert [(h.chunk_id, h.score) for h in after] == [(h.chunk_id, h.score) for h in before]
        again = svc.ask(question)
        assert again.cached and again.answer == first.answer
    assert svc.collection("kb").generation > generation
