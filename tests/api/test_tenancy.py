"""Tenants at the API: two tenants, a tenant-less reader, a tenant admin and a global admin, over
documents of each tenant and tenant-less ones, through every route that reads or manages them
(search, answer, chat, documents, collections, jobs, audit, keys, admin health, metrics, the
admin page).

A key with a tenant reads its tenant's documents and tenant-less ones; a key without a tenant
reads tenant-less documents only, unless it is an admin (every tenant). Jobs are visible to
their submitter within the tenant it submitted in, and to that tenant's admins; audit rows carry
the key's tenant; an admin with a tenant manages only its tenant's keys and collections, and
everything else answers exactly like a missing thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ragstack.access import Keys
from ragstack.api import create_app
from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import IngestRequest, Ragstack, SourceSpec

WORD = "lighthouse"  # in every document: a search for it finds whatever the key may read


@dataclass
class World:
    client: TestClient
    svc: Ragstack
    keys: dict[str, dict[str, str]]  # name -> headers
    ids: dict[str, str]  # name -> key id
    docs: dict[str, tuple[str, str]]  # file name -> (collection, public document id)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _folder(root: Path, name: str, files: dict[str, str]) -> SourceSpec:
    folder = root / name
    folder.mkdir(parents=True)
    for file, body in files.items():
        (folder / file).write_text(f"# {file}\n\n{body} The {WORD} keeps watch.\n")
    return SourceSpec(str(folder))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    svc = build(Settings(data_dir=tmp_path / "data", embedder="hashing", principal="user:ops"))
    docs = tmp_path / "docs"
    shared = [
        ("open", None, {"shared-open.md": "Open notes for everyone."}),
        ("acme", "acme", {"shared-acme.md": "Acme quarterly plans."}),
        ("globex", "globex", {"shared-globex.md": "Globex merger notes."}),
    ]
    for folder, tenant, files in shared:
        svc.ingest(IngestRequest("shared", [_folder(docs, folder, files)], public=True,
                                 tenant=tenant), principal="user:ops")  # fmt: skip
    for tenant in ("acme", "globex"):
        svc.create_collection(f"{tenant}-kb", owner="user:ops", public=True, tenant=tenant)
        source = _folder(docs, f"{tenant}-kb", {f"{tenant}-kb.md": f"{tenant} handbook."})
        svc.ingest(IngestRequest(f"{tenant}-kb", [source], public=True), principal="user:ops")
    keys = Keys(svc.store)
    made = {
        "acme": keys.create("user:ann", tenant="acme"),
        "globex": keys.create("user:gus", tenant="globex"),
        "plain": keys.create("user:pat"),  # a reader without a tenant
        "acme_writer": keys.create("user:sam", role="writer", tenant="acme"),
        "globex_sam": keys.create("user:sam", role="writer", tenant="globex"),  # same principal
        "plain_writer": keys.create("user:wes", role="writer"),
        "acme_admin": keys.create("user:ada", role="admin", tenant="acme"),
        "admin": keys.create("user:root", role="admin"),
    }
    client = TestClient(create_app(svc), raise_server_exceptions=False)
    public = client.app.state.api.ids  # type: ignore[attr-defined]
    ids = {d.uri.rsplit("/", 1)[-1]: (c, public.document(d.id)) for c in COLLECTIONS
           for d in svc.documents(c)}  # fmt: skip
    with client:
        yield World(client, svc, {k: bearer(s) for k, (_, s) in made.items()},
                    {k: i.key_id for k, (i, _) in made.items()}, ids)  # fmt: skip


SEES = {  # what each key reads: collections -> the documents in them
    "acme": {"shared": {"shared-open.md", "shared-acme.md"}, "acme-kb": {"acme-kb.md"}},
    "globex": {"shared": {"shared-open.md", "shared-globex.md"}, "globex-kb": {"globex-kb.md"}},
    "plain": {"shared": {"shared-open.md"}},
    "acme_admin": {"shared": {"shared-open.md", "shared-acme.md"}, "acme-kb": {"acme-kb.md"}},
    "admin": {
        "shared": {"shared-open.md", "shared-acme.md", "shared-globex.md"},
        "acme-kb": {"acme-kb.md"},
        "globex-kb": {"globex-kb.md"},
    },
}
COLLECTIONS = ("shared", "acme-kb", "globex-kb")


def names(uris: object) -> set[str]:
    assert isinstance(uris, list)
    return {str(u).rsplit("/", 1)[-1] for u in uris}


def test_reads_are_confined_to_the_key_tenant(world: World) -> None:
    c = world.client
    for who, sees in SEES.items():
        h = world.keys[who]
        listed = {x["name"]: x["documents"] for x in c.get("/v1/collections", headers=h).json()}
        assert listed == {name: len(docs) for name, docs in sees.items()}, who
        for name in COLLECTIONS:
            search = c.post("/v1/search", json={"collection": name, "query": WORD, "top_k": 50},
                            headers=h)  # fmt: skip
            listing = c.get(f"/v1/collections/{name}/documents", headers=h)
            answer = c.post("/v1/answer", headers=h,
                            json={"collection": name, "question": f"What keeps watch, {WORD}?",
                                  "use_cache": False})  # fmt: skip
            chat = c.post("/v1/chat/completions", headers=h, json={
                "model": name, "messages": [{"role": "user", "content": f"{WORD}?"}]})  # fmt: skip
            if name not in sees:  # answered exactly like a missing collection
                for r in (search, listing, answer, chat):
                    assert r.status_code == 404, (who, name, r.text)
                    assert r.json()["error"]["message"] == f"no collection named {name!r}"
                continue
            assert names([x["uri"] for x in search.json()["hits"]]) == sees[name], (who, name)
            assert names([d["uri"] for d in listing.json()]) == sees[name], (who, name)
            assert names([s["uri"] for s in answer.json()["sources"]]) <= sees[name]
            assert answer.json()["sources"], (who, name)
            cited = chat.json()["ragstack"]["sources"]
            assert cited and names([s["uri"] for s in cited]) <= sees[name]
        readable = set().union(*sees.values())
        for file, (collection, doc_id) in world.docs.items():
            r = c.get(f"/v1/collections/{collection}/documents/{doc_id}", headers=h)
            assert (r.status_code == 200) == (file in readable), (who, file, r.status_code)


def test_collections_and_uploads_get_the_key_tenant_never_an_empty_one(world: World) -> None:
    c, k = world.client, world.keys
    assert c.post("/v1/collections", json={"name": "plain-new"},
                  headers=k["plain_writer"]).status_code == 201  # fmt: skip
    assert c.post("/v1/collections", json={"name": "acme-new"},
                  headers=k["acme_writer"]).status_code == 201  # fmt: skip
    assert world.svc.collection("plain-new").tenant is None
    assert world.svc.collection("acme-new").tenant == "acme"
    # a tenant-less writer's upload into the shared collection is tenant-less: everyone reads it
    files = [("files", ("plain-up.md", f"# Up\n\nThe {WORD} upload.".encode(), "text/markdown"))]
    r = c.post("/v1/collections/shared/documents", files=files, data={"public": "true"},
               headers=k["plain_writer"])  # fmt: skip
    assert r.status_code == 202, r.text
    jobs = c.app.state.api.jobs  # type: ignore[attr-defined]
    assert jobs.wait(r.json()["id"]).status == "completed"
    with world.svc.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT uri, tenant FROM documents")).all()
        tenants = {str(uri).rsplit("/", 1)[-1]: tenant for uri, tenant in rows}
        stored = set(conn.execute(text("SELECT tenant FROM collections")).scalars())
    assert tenants["plain-up.md"] is None and "" not in set(tenants.values()) | stored
    for who in ("acme", "globex", "plain"):
        hits = c.post("/v1/search", json={"collection": "shared", "query": "upload"},
                      headers=k[who]).json()["hits"]  # fmt: skip
        assert "plain-up.md" in names([h["uri"] for h in hits]), who
    # a tenant admin may not delete a collection outside its tenant that is not its own
    assert c.delete("/v1/collections/shared", headers=k["acme_admin"]).status_code == 403
    assert c.delete("/v1/collections/globex-kb", headers=k["acme_admin"]).status_code == 404
    assert c.delete("/v1/collections/acme-new", headers=k["acme_admin"]).status_code == 204
    assert c.delete("/v1/collections/plain-new", headers=k["admin"]).status_code == 204


def test_jobs_are_seen_within_the_tenant_they_were_submitted_in(world: World) -> None:
    c, k = world.client, world.keys
    files = [("files", ("acme-up.md", b"# Up\n\nAcme upload.", "text/markdown"))]
    r = c.post("/v1/collections/acme-kb/documents", files=files, headers=k["acme_writer"])
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    c.app.state.api.jobs.wait(job)  # type: ignore[attr-defined]
    seen = {who: c.get(f"/v1/jobs/{job}", headers=h).status_code for who, h in k.items()}
    assert seen == {
        "acme": 404,  # same tenant, another principal
        "globex": 404,
        "plain": 404,
        "acme_writer": 200,  # its submitter
        "globex_sam": 404,  # the same principal under another tenant
        "plain_writer": 404,
        "acme_admin": 200,  # its tenant's admin
        "admin": 200,  # the operator
    }
    hidden = c.get(f"/v1/jobs/{job}", headers=k["globex_sam"]).json()
    assert hidden == {"error": {"code": "not_found", "message": f"no job {job!r}", "status": 404}}


def test_audit_rows_carry_the_key_tenant_and_tenant_admins_read_their_own(world: World) -> None:
    c, k = world.client, world.keys
    for who in ("acme", "globex", "plain"):
        c.post("/v1/search", json={"collection": "shared", "query": f"{who} {WORD}"},
               headers=k[who])  # fmt: skip
    everything = c.get("/v1/audit?action=search", headers=k["admin"]).json()
    by_key = {row["key_id"]: row["tenant"] for row in everything}
    assert by_key == {world.ids["acme"]: "acme", world.ids["globex"]: "globex",
                      world.ids["plain"]: None}  # fmt: skip
    acme = c.get("/v1/audit", headers=k["acme_admin"]).json()
    assert acme and {row["tenant"] for row in acme} == {"acme"}
    assert {row["key_id"] for row in acme if row["action"] == "search"} == {world.ids["acme"]}
    lines = c.get("/v1/audit?format=jsonl", headers=k["acme_admin"]).text.splitlines()
    assert {json.loads(line)["tenant"] for line in lines} == {"acme"}
    assert "globex" not in json.dumps(acme)


def test_tenant_admins_manage_only_their_tenant_keys(world: World) -> None:
    c, k, ids = world.client, world.keys, world.ids
    listed = {x["key_id"] for x in c.get("/v1/keys", headers=k["acme_admin"]).json()}
    assert listed == {ids["acme"], ids["acme_writer"], ids["acme_admin"]}
    assert len(c.get("/v1/keys", headers=k["admin"]).json()) == len(ids)
    made = c.post("/v1/keys", json={"principal": "user:new"}, headers=k["acme_admin"])
    assert made.status_code == 201 and made.json()["key"]["tenant"] == "acme"
    for tenant in ("globex", "other"):
        r = c.post("/v1/keys", json={"principal": "user:x", "tenant": tenant},
                   headers=k["acme_admin"])  # fmt: skip
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    # another tenant's key or a tenant-less one is as missing as one that does not exist
    for other in (ids["globex"], ids["plain"], ids["admin"]):
        r = c.delete(f"/v1/keys/{other}", headers=k["acme_admin"])
        assert r.status_code == 404 and r.json()["error"]["message"] == f"no API key {other!r}"
    assert c.get("/v1/collections", headers=k["globex"]).status_code == 200  # still live
    assert c.delete(f"/v1/keys/{ids['acme']}", headers=k["acme_admin"]).status_code == 200
    assert c.get("/v1/collections", headers=k["acme"]).status_code == 401
    # the operator makes keys of any tenant, or of none; a blank tenant is no tenant name
    r = c.post("/v1/keys", json={"principal": "user:y", "tenant": "globex"}, headers=k["admin"])
    assert r.status_code == 201 and r.json()["key"]["tenant"] == "globex"
    r = c.post("/v1/keys", json={"principal": "user:y", "tenant": " "}, headers=k["admin"])
    assert r.status_code == 422


def test_admin_routes_see_only_the_tenant_collections(world: World) -> None:
    c, k = world.client, world.keys
    for name in COLLECTIONS:
        for path in (f"/v1/admin/collections/{name}/health",):
            own = c.get(path, headers=k["acme_admin"])
            assert own.status_code == (200 if name == "acme-kb" else 404), (name, own.text)
            assert c.get(path, headers=k["admin"]).status_code == 200
        for action in ("reindex", "cache/clear"):
            r = c.post(f"/v1/admin/collections/{name}/{action}", headers=k["acme_admin"])
            assert r.status_code == (200 if name == "acme-kb" else 404), (name, action)
    missing = c.get("/v1/admin/collections/nope/health", headers=k["acme_admin"]).json()
    hidden = c.get("/v1/admin/collections/globex-kb/health", headers=k["acme_admin"]).json()
    assert hidden["error"]["message"].replace("globex-kb", "nope") == missing["error"]["message"]
    tenant_metrics = c.get("/metrics", headers=k["acme_admin"]).text
    assert 'ragstack_documents{collection="acme-kb"} 1.0' in tenant_metrics
    assert "globex" not in tenant_metrics and 'collection="shared"' not in tenant_metrics
    assert "ragstack_requests_total" not in tenant_metrics
    operator_metrics = c.get("/metrics", headers=k["admin"]).text
    for name in COLLECTIONS:
        assert f'ragstack_documents{{collection="{name}"}}' in operator_metrics
    assert "ragstack_requests_total" in operator_metrics


def test_the_admin_page_of_a_tenant_admin(world: World) -> None:
    c, k = world.client, world.keys
    secret = k["acme_admin"]["Authorization"].removeprefix("Bearer ")
    assert c.post("/admin/login", data={"key": secret}, follow_redirects=False).status_code == 303
    page = c.get("/admin").text
    assert re.findall(r'href="/admin/collections/([^"]+)"', page) == ["acme-kb"]
    assert c.get("/admin/collections/acme-kb").status_code == 200
    html = c.get("/admin/collections/acme-kb").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf
    for name in ("globex-kb", "shared"):
        assert c.get(f"/admin/collections/{name}").status_code == 404
        r = c.post(f"/admin/collections/{name}/reindex", data={"csrf": csrf.group(1)},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 404
        uri = f"{name}.md" if name != "shared" else "shared-globex.md"
        doc = next(d.id for d in world.svc.documents(name) if d.uri.endswith(uri))
        r = c.post(f"/admin/collections/{name}/documents/{doc}/delete",
                   data={"csrf": csrf.group(1)}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 404
    assert len(world.svc.documents("globex-kb")) == 1 and len(world.svc.documents("shared")) == 3
