"""Randomised ACL leak test through every API route that returns content (search, answer,
chat completions, document lists and reads, collection counts).

40 documents get random ACLs over 5 users, 4 groups and ``public``; each carries a unique
marker word. 12,000 seeded requests with random keys (a user and some groups), routes, modes,
queries, filters and document ids are checked against an oracle computed from the ACLs: no
hit, citation, source, document, chunk or count may come from a document the key cannot
read, no response may contain such a document's marker, and a hidden document or collection
must be answered exactly like a missing one.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstack.access import Keys
from ragstack.api import create_app
from ragstack.app import build
from ragstack.config import Settings
from ragstack.publicids import PublicIds
from ragstack.service import IngestRequest, SourceSpec

CASES = 12_000
USERS = [f"user:u{i}" for i in range(5)]
GROUPS = [f"group:g{i}" for i in range(4)]
WORDS = [
    "deploy",
    "pipeline",
    "budget",
    "salary",
    "review",
    "incident",
    "oncall",
    "roadmap",
    "hiring",
    "security",
    "audit",
    "launch",
    "vendor",
    "contract",
    "privacy",
]


def marker(i: int) -> str:
    return f"zq{i:02d}marker"


@dataclass
class World:
    client: TestClient
    readers: dict[str, frozenset[str]]  # key secret -> the principals it reads as (with public)
    acl: dict[str, frozenset[str]]  # document file name -> its ACL
    doc_ids: dict[str, str]  # file name -> public document id
    chunk_doc: dict[str, str]  # public chunk id -> file name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("leaks")
    rng = random.Random(2026)
    docs = root / "docs"
    docs.mkdir()
    acl: dict[str, frozenset[str]] = {}
    for i in range(40):
        name = f"d{i:02d}.md"
        who = frozenset(rng.sample([*USERS, *GROUPS, "public"], rng.choice([1, 1, 2])))
        acl[name] = who
        body = " ".join(rng.choices(WORDS, k=30))
        (docs / name).write_text(f"# Note {i}\n\n{marker(i)} {body}. The {marker(i)} ends.\n")
        allow = sorted(p for p in who if p != "public")
        (docs / f"{name}.acl.json").write_text(
            json.dumps({"allow": allow, "public": "public" in who})
        )
    settings: dict[str, object] = {
        "data_dir": root / "data",
        "embedder": "hashing",
        "principal": "user:admin",
        "api_rate_per_s": 100_000.0,
        "api_burst": 100_000,
        "chunk_max_tokens": 64,
    }
    svc = build(Settings(**settings))  # type: ignore[arg-type]
    svc.ingest(IngestRequest("corp", [SourceSpec(str(docs))]), principal="user:admin")
    keys = Keys(svc.store)
    readers: dict[str, frozenset[str]] = {}
    for user in USERS:
        for n in range(3):
            groups = sorted(rng.sample(GROUPS, n))
            _, secret = keys.create(user, groups=groups)
            readers[secret] = frozenset([user, *groups, "public"])
    ids = PublicIds(svc.store.secret("ids"))  # what the API shows instead of SQL's ids
    internal = {Path(d.uri).name: d.id for d in svc.documents("corp", limit=1000)}
    doc_ids = {name: ids.document(d) for name, d in internal.items()}
    chunk_doc = {ids.chunk(c.id): name for name, d in internal.items()
                 for c in svc.chunks("corp", d)}  # fmt: skip
    return World(TestClient(create_app(svc)), readers, acl, doc_ids, chunk_doc)


def returned(kind: str, body: Any) -> str:
    """What came back, minus the caller's own query echoed by /v1/search and the answers."""
    if kind == "search":
        return json.dumps(body["hits"])
    if kind in ("answer", "chat"):
        (body["ragstack"] if kind == "chat" else body).pop("query")
    return json.dumps(body)


def test_no_route_leaks_a_document_outside_the_acl(world: World) -> None:
    rng = random.Random(7)
    secrets = sorted(world.readers)
    missing_doc = "d_0123456789abcdef"
    routes: Counter[str] = Counter()
    leaks: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            leaks.append(what)

    for case in range(CASES):
        secret = rng.choice(secrets)
        who = world.readers[secret]
        readable = {n for n, a in world.acl.items() if a & who}
        hidden = set(world.acl) - readable
        headers = {"Authorization": f"Bearer {secret}"}
        kind = rng.choices(["search", "list", "get", "collections", "answer", "chat"],
                           weights=[58, 12, 20, 5, 3, 2])[0]  # fmt: skip
        routes[kind] += 1
        if kind == "search":
            words = rng.sample(WORDS, rng.randint(1, 3))
            if rng.random() < 0.5:
                words.append(marker(rng.randrange(40)))  # ask for a marker by name
            body: dict[str, object] = {
                "collection": "corp", "query": " ".join(words), "top_k": rng.randint(1, 50),
                "mode": rng.choice(["bm25", "dense", "hybrid"]),
            }  # fmt: skip
            if rng.random() < 0.2:
                body["filters"] = {"mime_types": ["text/markdown"]}
            r = world.client.post("/v1/search", json=body, headers=headers)
            got = {Path(h["uri"]).name for h in r.json()["hits"]}
            chunks = {world.chunk_doc[h["chunk_id"]] for h in r.json()["hits"]}
            check(r.status_code == 200 and got <= readable and chunks <= readable, f"{case} search")
        elif kind == "list":
            r = world.client.get("/v1/collections/corp/documents?limit=1000", headers=headers)
            got = {Path(d["uri"]).name for d in r.json()}
            check(got == readable, f"{case} list")
        elif kind == "get":
            name = rng.choice(sorted(world.acl))
            doc_id = world.doc_ids[name]
            r = world.client.get(f"/v1/collections/corp/documents/{doc_id}", headers=headers)
            if name in readable:
                check(r.status_code == 200 and Path(r.json()["uri"]).name == name, f"{case} get")
            else:
                gone = world.client.get(f"/v1/collections/corp/documents/{missing_doc}",
                                        headers=headers)  # fmt: skip
                check(r.status_code == gone.status_code == 404, f"{case} get hidden")
                check(r.json()["error"]["message"].replace(str(doc_id), "N")
                      == gone.json()["error"]["message"].replace(str(missing_doc), "N"),
                      f"{case} get hidden message")  # fmt: skip
        elif kind == "collections":
            r = world.client.get("/v1/collections", headers=headers)
            counts = {c["name"]: c["documents"] for c in r.json()}
            check(counts.get("corp", 0) == len(readable), f"{case} collections")
        elif kind == "answer":
            question = f"What about {' '.join(rng.sample(WORDS, 2))} {marker(rng.randrange(40))}?"
            r = world.client.post("/v1/answer", headers=headers,
                                  json={"collection": "corp", "question": question})  # fmt: skip
            data = r.json()
            cited = {Path(c["uri"]).name for c in data["citations"]}
            sources = {world.chunk_doc[s["chunk_id"]] for s in data["sources"]}
            check(r.status_code == 200 and cited <= readable and sources <= readable,
                  f"{case} answer")  # fmt: skip
        else:
            question = f"Tell me about {rng.choice(WORDS)} {marker(rng.randrange(40))}"
            r = world.client.post("/v1/chat/completions", headers=headers,
                                  json={"model": "corp", "messages": [
                                      {"role": "user", "content": question}]})  # fmt: skip
            extra = r.json()["ragstack"]
            cited = {Path(c["uri"]).name for c in extra["citations"]}
            sources = {world.chunk_doc[s["chunk_id"]] for s in extra["sources"]}
            check(r.status_code == 200 and cited <= readable and sources <= readable,
                  f"{case} chat")  # fmt: skip
        text = returned(kind, r.json())
        check(not any(marker(int(n[1:3])) in text for n in hidden), f"{case} {kind} marker")

    assert sum(routes.values()) == CASES >= 10_000 and min(routes.values()) >= 200, routes
    assert leaks == [], leaks[:20]
