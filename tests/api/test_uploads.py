"""Uploads cannot plant, take over or linger: no ACL sidecar is ever read from what the API
stored, an upload lives in its uploader's namespace (so it never replaces someone else's
document), its ACL is only what its uploader asked for, the staged original is deleted when
the job ends (or kept, by an operator setting, and removed with its document and collection);
``PATCH`` changes a document's readers for the very next request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragstack.access import Keys
from tests.api.test_api import Api, bearer, error_of, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made


def upload(
    api: Api, headers: dict[str, str], name: str, body: bytes, **data: object
) -> dict[str, Any]:
    files = [("files", (name, body, "text/markdown"))]
    r = api.client.post("/v1/collections/kb/documents", files=files, data=data, headers=headers)
    assert r.status_code == 202, r.text
    done = api.client.app.state.api.jobs.wait(r.json()["id"])  # type: ignore[attr-defined]
    assert done.status == "completed", done
    got: dict[str, Any] = api.client.get(f"/v1/jobs/{done.id}", headers=headers).json()
    return got


def found(api: Api, headers: dict[str, str], query: str) -> list[str]:
    r = api.client.post("/v1/search", json={"collection": "kb", "query": query, "mode": "bm25"},
                        headers=headers)  # fmt: skip
    return [h["text"] for h in r.json()["hits"]]


def test_sidecars_cannot_be_uploaded_or_planted(api: Api) -> None:
    r = api.client.post(
        "/v1/collections/kb/documents",
        files=[("files", ("board.md.acl.json", b'{"public": true}', "application/json"))],
        headers=api.writer,
    )
    assert r.status_code == 400 and "sidecar" in str(error_of(r)["message"])
    # a folder-level sidecar name is no better (its leading dot is dropped, then refused)
    r = api.client.post(
        "/v1/collections/kb/documents",
        files=[("files", (".acl.json", b'{"public": true}', "application/json"))],
        headers=api.writer,
    )
    assert r.status_code == 400
    assert not list((api.svc.settings.data_dir / "uploads").rglob("*acl.json"))


def test_an_upload_never_takes_over_another_writers_document(api: Api) -> None:
    keys = Keys(api.svc.store)
    other = bearer(keys.create("user:mallory", role="writer")[1])
    upload(api, api.writer, "board.md", b"# Board\n\nThe zanzibar merger closes in May.",
           allow=["user:alice"])  # fmt: skip
    # the same name from another writer, public: a document of its own, not a replacement
    upload(api, other, "board.md", b"# Board\n\nPublic zanzibar minutes.", public="true")
    seen = found(api, api.outsider, "zanzibar")
    assert any("minutes" in t for t in seen) and not any("merger" in t for t in seen)
    assert any("merger" in t for t in found(api, api.eng, "zanzibar merger")), "alice still reads"
    # without allow or public, an upload is private to its uploader
    job = upload(api, other, "notes.md", b"# Notes\n\nquokka sightings")
    assert job["counts"]["ingested"] == 1
    assert found(api, api.outsider, "quokka") == [] and found(api, api.eng, "quokka") == []
    # the uploader re-uploading replaces its own document
    again = upload(api, other, "notes.md", b"# Notes\n\nquokka sightings, updated")
    assert again["counts"]["updated"] == 1


def test_staged_originals_are_deleted_once_ingested(api: Api) -> None:
    upload(api, api.writer, "secret.md", b"# Secret\n\nCall 555-0100 about the okapi.")
    assert not [p for p in (api.svc.settings.data_dir / "uploads").rglob("*") if p.is_file()]


def test_kept_originals_leave_with_their_document_and_collection(tmp_path: Path) -> None:
    api = make_api(tmp_path, keep_uploads=True)
    with api.client:
        upload(api, api.writer, "kept.md", b"# Kept\n\nThe narwhal file.", public="true")
        kept = [p for p in (tmp_path / "data" / "uploads").rglob("*") if p.is_file()]
        assert [p.name for p in kept] == ["kept.md"]
        docs = api.client.get("/v1/collections/kb/documents?limit=100", headers=api.writer).json()
        (doc,) = [d for d in docs if d["uri"].endswith("kept.md")]
        r = api.client.delete(f"/v1/collections/kb/documents/{doc['id']}", headers=api.writer)
        assert r.status_code == 204
        assert not kept[0].exists()
        upload(api, api.writer, "again.md", b"# Again\n\nThe dugong file.", public="true")
        assert any(p.is_file() for p in (tmp_path / "data" / "uploads").rglob("again.md"))
        assert api.client.delete("/v1/collections/kb", headers=api.admin).status_code == 204
        assert not [p for p in (tmp_path / "data" / "uploads").rglob("*") if p.is_file()]


def test_patch_changes_readers_for_the_next_request(api: Api) -> None:
    upload(api, api.writer, "plan.md", b"# Plan\n\nThe capybara launch plan.", public="true")
    assert found(api, api.outsider, "capybara")
    docs = api.client.get("/v1/collections/kb/documents?limit=100", headers=api.writer).json()
    (doc,) = [d for d in docs if d["uri"].endswith("plan.md")]
    path = f"/v1/collections/kb/documents/{doc['id']}"
    assert api.client.patch(path, json={"public": True}, headers=api.eng).status_code == 403
    r = api.client.patch(path, json={"allow": ["group:eng"]}, headers=api.writer)
    assert r.status_code == 200, r.text
    assert found(api, api.outsider, "capybara") == [], "revoked for the very next search"
    assert found(api, api.eng, "capybara")
    bad = api.client.patch(path, json={"allow": ["user:x"], "public": True}, headers=api.writer)
    assert bad.status_code == 400
    # a writer who cannot read a document gets exactly what a missing one gives
    mallory = bearer(Keys(api.svc.store).create("user:mallory", role="writer")[1])
    hidden = api.client.patch(path, json={"public": True}, headers=mallory)
    missing = api.client.patch("/v1/collections/kb/documents/999999", json={"public": True},
                               headers=mallory)  # fmt: skip
    assert hidden.status_code == missing.status_code == 404
    assert found(api, api.outsider, "capybara") == []
