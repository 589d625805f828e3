"""The leak fuzzer: hostile readers against a live API server, with an oracle.

A world of several collections and tenants, documents with random ACLs (each carrying a
marker word of its own), and reader keys of every kind (a tenant's, another tenant's,
tenant-less ones); served by a real uvicorn on loopback (``LiveServer``), searched through
HTTP with httpx. Three phases, each counting what ``evals.bench_security`` reports:

* ``fuzz``: seeded random requests through every route that returns content (search in
  every mode, with filters, reranking and grouped fusion; answers, streamed or not; chat
  completions, streamed or not; document lists and reads; collection lists). A leak is a
  hit, citation, source, document or count from a document the key may not read, a hidden
  document's marker anywhere in a response, per-stage timings for a non-admin, a hidden
  document or collection answered unlike a missing one, or an internal integer id
  (``id_gaps_revealed``).
* ``twins``: for each reader and collection, a twin collection that holds only what the
  reader may read; its BM25 and exact dense results (ids by document, ranks, scores) must
  equal the reader's on the real collection (``score_dependence`` counts differences). The
  ``big`` collection's permitted sets pass the HNSW exact-scan limit (4,096), so the
  over-fetch path runs there (its dense results are approximate and are not compared).
* ``churn``: readers search and ask while a writer narrows, widens and deletes documents;
  a response is stale when it holds a document that was unreadable for the reader in every
  state from the request's start to its end (``revocation_stale_responses``).
"""

from __future__ import annotations

import json
import random
import re
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PUBLIC = "public"
USERS = [f"user:u{i}" for i in range(6)]
GROUPS = [f"group:g{i}" for i in range(4)]
TENANTS = ("acme", "globex")
WORDS = (
    "deploy", "pipeline", "budget", "salary", "review", "incident", "oncall", "roadmap", "hiring",
    "security", "audit", "launch", "vendor", "contract", "privacy", "travel", "expense",
    "laptop", "benefits", "leave",
)  # fmt: skip
TEAMS = ("red", "blue", "green", "gold")
_INT_ID = re.compile(r'"(?:chunk_id|document_id|id)":\s*\d')


def marker(collection: str, n: int) -> str:
    return f"zq{collection[:2]}{n:05d}mark"


@dataclass(frozen=True)
class Doc:
    collection: str
    row: int
    acl: frozenset[str]
    tenant: str | None
    team: str
    text: str

    @property
    def marker(self) -> str:
        return marker(self.collection, self.row)


@dataclass(frozen=True)
class Reader:
    """A key: its principal, groups, tenant and role."""

    name: str
    principal: str
    groups: tuple[str, ...] = ()
    tenant: str | None = None
    role: str = "reader"

    @property
    def scope(self) -> frozenset[str]:
        return frozenset({self.principal, *self.groups, PUBLIC})

    def reads(self, acl: frozenset[str] | None, tenant: str | None) -> bool:
        """The oracle: ``acl`` ``None`` is a deleted document."""
        if acl is None:
            return False
        if self.role == "admin" and self.tenant is None:
            return True
        if self.tenant is None:  # a tenant-less key reads tenant-less documents only
            if tenant is not None:
                return False
        elif tenant not in (None, self.tenant):
            return False
        return bool(acl & self.scope)


READERS = (
    Reader("acme-1", "user:u0", ("group:g0",), "acme"),
    Reader("acme-2", "user:u3", ("group:g3", "group:g1"), "acme"),
    Reader("globex", "user:u1", ("group:g1", "group:g2"), "globex"),
    Reader("plain", "user:u2", (), None),
    Reader("staff", "user:u4", tuple(GROUPS), None),
    Reader("crowd", "user:u5", ("group:crowd",), "acme"),
)
ADMIN = Reader("admin", "user:root", (), None, "admin")


@dataclass
class Sizes:
    corp: int = 160  # documents, exact dense index: twins compare dense too
    big: int = 5000  # one chunk each, HNSW; group:crowd reads ~90% (over the exact limit)
    acme: int = 40  # a collection of tenant acme


def _acl(rng: random.Random) -> frozenset[str]:
    pool = [*USERS, *GROUPS, PUBLIC]
    return frozenset(rng.sample(pool, rng.choice([1, 1, 2, 3])))


def make_documents(rng: random.Random, sizes: Sizes) -> list[Doc]:
    docs: list[Doc] = []
    for n in range(sizes.corp):
        body = " ".join(rng.choices(WORDS, k=rng.randint(8, 40)))
        tenant = rng.choice([None, None, "acme", "globex"])
        m = marker("corp", n)
        docs.append(Doc("corp", n, _acl(rng), tenant, rng.choice(TEAMS),
                        f"Note {n}. {m} {body}. The {m} ends here."))  # fmt: skip
    for n in range(sizes.big):
        acl = {"group:crowd"} if rng.random() < 0.9 else set(_acl(rng))
        if rng.random() < 0.1:
            acl.add(rng.choice(USERS))
        words = " ".join(rng.choices(WORDS, k=6))
        docs.append(Doc("big", n, frozenset(acl), rng.choice([None, "acme"]), rng.choice(TEAMS),
                        f"{marker('big', n)} {words}"))  # fmt: skip
    for n in range(sizes.acme):
        words = " ".join(rng.choices(WORDS, k=20))
        docs.append(Doc("acme", n, _acl(rng), "acme", rng.choice(TEAMS),
                        f"{marker('acme', n)} {words}"))  # fmt: skip
    return docs


def write_source(path: Path, docs: Sequence[Doc]) -> None:
    """The documents as rows of a SQLite table the SQL connector ingests."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, coll TEXT, n INTEGER, title TEXT, "
                "body TEXT, team TEXT, acl TEXT)")  # fmt: skip
    con.executemany(
        "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"{d.collection}-{d.row:05d}",
                d.collection,
                d.row,
                f"{d.collection} {d.row}",
                d.text,
                d.team,
                json.dumps(
                    {
                        "allow": sorted(d.acl - {PUBLIC}),
                        "public": PUBLIC in d.acl,
                        **({"tenant": d.tenant} if d.tenant else {}),
                    }
                ),
            )
            for d in docs
        ],
    )
    con.commit()
    con.close()


class OverlapReranker:
    """A test double of the ``Reranker`` protocol (no cross-encoder ships): query-word
    overlap. Reranking's ACL behaviour is what is tested, not its quality."""

    model_id = "overlap"

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        words = set(query.lower().split())
        return [float(len(words & set(p.lower().split()))) for p in passages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The API app served by uvicorn on a loopback port, in a thread of this process (so a
    test double can be put into the service first)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class World:
    """Collections, documents, keys and the oracle, on one database."""

    svc: Any
    docs: list[Doc]
    secrets: dict[str, str]  # reader name -> API key
    by_uri: dict[str, Doc]
    public_ids: dict[str, str]  # uri -> public document id
    source: Path
    twins: dict[tuple[str, str], str] = field(default_factory=dict)  # (reader, coll) -> twin

    def doc_of(self, uri: str) -> Doc:
        return self.by_uri[uri]


def _sql_spec(source: Path, where: str) -> Any:
    from ragstack.service import SourceSpec, SqlQuery

    query = SqlQuery(f"SELECT id, title, body, team, acl FROM rows WHERE {where} ORDER BY n",
                     ("body",), title_column="title", metadata_columns=("team",),
                     acl_column="acl", name="rows")  # fmt: skip
    return SourceSpec(f"sqlite:///{source}", sql=query)


def build_world(
    data_dir: Path,
    *,
    database_url: str | None = None,
    seed: int = 2026,
    sizes: Sizes | None = None,
    twins: bool = True,
) -> World:
    """Ingest the world (and each reader's twins) into a fresh ragstack; keys for every
    reader and an admin."""
    from ragstack.access import Keys
    from ragstack.app import build
    from ragstack.config import Settings
    from ragstack.publicids import PublicIds
    from ragstack.search import Fusion
    from ragstack.service import IngestRequest

    sizes = sizes or Sizes()
    rng = random.Random(seed)
    docs = make_documents(rng, sizes)
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir / "source.db"
    write_source(source, docs)
    settings: dict[str, Any] = {
        "data_dir": data_dir / "data", "embedder": "hashing", "principal": "user:root",
        "api_rate_per_s": 100_000.0, "api_burst": 100_000, "chunk_max_tokens": 128,
        "api_timeout_s": 120.0, **({"database_url": database_url} if database_url else {}),
    }  # fmt: skip
    svc = build(Settings(**settings))
    svc.c.reranker = OverlapReranker()
    svc.create_collection("corp", owner="user:root", vector_backend="exact")
    svc.create_collection("acme", owner="user:root", tenant="acme", vector_backend="exact")
    for coll in ("corp", "big", "acme"):
        request = IngestRequest(coll, [_sql_spec(source, f"coll = '{coll}'")])
        svc.ingest(request, principal="user:root")
    svc.set_fusion("corp", Fusion(group_by="team", group_weight=0.5))
    if twins:
        for reader in READERS:
            for coll in ("corp", "big"):
                rows = [d for d in docs if d.collection == coll and reader.reads(d.acl, d.tenant)]
                if not rows:
                    continue
                twin = f"twin-{reader.name}-{coll}"
                backend = "exact" if coll == "corp" else "hnsw"
                svc.create_collection(twin, owner="user:root", vector_backend=backend)
                where = f"coll = '{coll}' AND n IN ({','.join(str(d.row) for d in rows)})"
                svc.ingest(IngestRequest(twin, [_sql_spec(source, where)]), principal="user:root")
                if coll == "corp":
                    svc.set_fusion(twin, Fusion(group_by="team", group_weight=0.5))
    keys = Keys(svc.store)
    secrets = {
        r.name: keys.create(r.principal, groups=r.groups, role=r.role, tenant=r.tenant)[1]
        for r in (*READERS, ADMIN)
    }
    by_uri: dict[str, Doc] = {}
    public_ids: dict[str, str] = {}
    ids = PublicIds(svc.store.secret("ids"))
    for coll in ("corp", "big", "acme"):
        key = {(d.collection, d.row): d for d in docs if d.collection == coll}
        for info in svc.documents(coll, limit=100_000):
            row = int(info.uri.rsplit("-", 1)[-1])
            by_uri[info.uri] = key[(coll, row)]
            public_ids[info.uri] = ids.document(info.id)
    world = World(svc, docs, secrets, by_uri, public_ids, source)
    if twins:
        world.twins = {(r.name, c): f"twin-{r.name}-{c}" for r in READERS for c in ("corp", "big")}
    return world


@dataclass
class Report:
    cases: int = 0
    leaks: list[str] = field(default_factory=list)
    id_gaps_revealed: int = 0
    score_dependence: int = 0
    twin_comparisons: int = 0
    stale: int = 0
    churn_responses: int = 0
    mutations: int = 0
    routes: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Report) -> None:
        self.cases += other.cases
        self.leaks += other.leaks
        self.id_gaps_revealed += other.id_gaps_revealed
        self.score_dependence += other.score_dependence
        self.twin_comparisons += other.twin_comparisons
        self.stale += other.stale
        self.churn_responses += other.churn_responses
        self.mutations += other.mutations
        self.routes.update(other.routes)


def _sse(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of a Server-Sent Events body (``message`` when unnamed)."""
    for block in text.split("\n\n"):
        event, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        if data and data != "[DONE]":
            yield event, json.loads(data)


class Fuzzer:
    """Random requests through a live server, checked against the world's oracle."""

    def __init__(self, world: World, base_url: str, seed: int = 7) -> None:
        self.world = world
        self.client = httpx.Client(base_url=base_url, timeout=120.0)
        self.rng = random.Random(seed)
        self.acl: dict[str, frozenset[str] | None] = {u: d.acl for u, d in world.by_uri.items()}
        self.report = Report()

    def close(self) -> None:
        self.client.close()

    def _headers(self, reader: Reader) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.secrets[reader.name]}"}

    def _reads(self, reader: Reader, uri: str) -> bool:
        doc = self.world.by_uri.get(uri)
        return doc is not None and reader.reads(self.acl.get(uri), doc.tenant)

    def _hidden_markers(self, reader: Reader, collection: str) -> list[str]:
        return [d.marker for u, d in self.world.by_uri.items()
                if d.collection == collection and not self._reads(reader, u)]  # fmt: skip

    def _leak(self, what: str) -> None:
        self.report.leaks.append(what)

    def _query(self, collection: str) -> str:
        words = self.rng.sample(WORDS, self.rng.randint(1, 3))
        pool = [d for d in self.world.docs if d.collection == collection]
        if self.rng.random() < 0.6 and pool:
            words.append(self.rng.choice(pool).marker)  # ask for a marker by name
        if self.rng.random() < 0.1:
            words.append("zzqunknownterm")
        return " ".join(words)

    # -- one case per route -----------------------------------------------------------------

    def case(self, n: int) -> None:
        reader = self.rng.choice(READERS)
        coll = self.rng.choices(["corp", "big", "acme"], weights=[6, 3, 1])[0]
        route = self.rng.choices(
            ["search", "answer", "answer_stream", "chat", "chat_stream", "list", "get",
             "collections"], weights=[50, 8, 4, 4, 3, 10, 16, 5])[0]  # fmt: skip
        self.report.routes[route] += 1
        self.report.cases += 1
        getattr(self, f"_{route}")(n, reader, coll)

    def _visible(self, reader: Reader, coll: str) -> bool:
        """The collections are the root's, private by default: a reader sees one when it
        may read one of its documents (a tenant's collection only within that tenant)."""
        return any(self._reads(reader, u) for u, d in self.world.by_uri.items()
                   if d.collection == coll)  # fmt: skip

    def _check_body(
        self, n: int, reader: Reader, coll: str, route: str, text: str, asked: str = ""
    ) -> None:
        """No hidden document's marker in ``text``, less the caller's own ``asked`` text
        (answers echo the query they searched)."""
        if asked:
            text = text.replace(asked, "")
        hidden = self._hidden_markers(reader, coll)
        found = [m for m in hidden if m in text]
        if found:
            self._leak(f"{n} {route} {reader.name} marker {found[:3]}")
        if _INT_ID.search(text):
            self.report.id_gaps_revealed += 1

    def _check_uris(self, n: int, reader: Reader, route: str, uris: Sequence[str]) -> None:
        bad = [u for u in uris if not self._reads(reader, u)]
        if bad:
            self._leak(f"{n} {route} {reader.name} returned {bad[:3]}")

    def _check_timings(self, n: int, route: str, timings: dict[str, Any]) -> None:
        if set(timings) - {"total_ms"}:
            self._leak(f"{n} {route} per-stage timings to a non-admin: {sorted(timings)}")

    def _missing_ok(self, n: int, route: str, r: httpx.Response, coll: str) -> bool:
        """Not visible: the response must be exactly a missing collection's."""
        if r.status_code != 404 or r.json()["error"]["message"] != f"no collection named {coll!r}":
            self._leak(f"{n} {route} hidden collection answered {r.status_code}")
        return False

    def _search(self, n: int, reader: Reader, coll: str) -> None:
        body: dict[str, Any] = {
            "collection": coll, "query": self._query(coll), "top_k": self.rng.randint(1, 50),
            "mode": self.rng.choice(["bm25", "dense", "hybrid"]),
        }  # fmt: skip
        pick = self.rng.random()
        if pick < 0.15:
            body["filters"] = {"meta": {"team": self.rng.choice(TEAMS)}}
        elif pick < 0.25:
            body["filters"] = {"mime_types": ["text/plain"], "exclude_instruction_like": True}
        if self.rng.random() < 0.15:
            body["rerank"] = True
        r = self.client.post("/v1/search", json=body, headers=self._headers(reader))
        if not self._visible(reader, coll):
            self._missing_ok(n, "search", r, coll)
            return
        if r.status_code != 200:
            self._leak(f"{n} search {reader.name} status {r.status_code}: {r.text[:200]}")
            return
        data = r.json()
        self._check_uris(n, reader, "search", [h["uri"] for h in data["hits"]])
        self._check_body(n, reader, coll, "search", json.dumps(data["hits"]))
        self._check_timings(n, "search", data["timings_ms"])

    def _answer_body(self, coll: str) -> dict[str, Any]:
        return {"collection": coll, "question": f"What about {self._query(coll)}?",
                "use_cache": self.rng.random() < 0.7,
                "rerank": self.rng.random() < 0.1}  # fmt: skip

    def _answer(self, n: int, reader: Reader, coll: str) -> None:
        body = self._answer_body(coll)
        r = self.client.post("/v1/answer", json=body, headers=self._headers(reader))
        if not self._visible(reader, coll):
            self._missing_ok(n, "answer", r, coll)
            return
        data = r.json()
        uris = [c["uri"] for c in data["citations"]] + [s["uri"] for s in data["sources"]]
        self._check_uris(n, reader, "answer", uris)
        self._check_body(n, reader, coll, "answer", r.text, body["question"])
        self._check_timings(n, "answer", data["timings_ms"])

    def _answer_stream(self, n: int, reader: Reader, coll: str) -> None:
        body = {**self._answer_body(coll), "stream": True}
        r = self.client.post("/v1/answer", json=body, headers=self._headers(reader))
        if not self._visible(reader, coll):
            self._missing_ok(n, "answer_stream", r, coll)
            return
        self._check_body(n, reader, coll, "answer_stream", r.text, body["question"])
        for event, data in _sse(r.text):
            if event == "answer":
                uris = [c["uri"] for c in data["citations"]] + [s["uri"] for s in data["sources"]]
                self._check_uris(n, reader, "answer_stream", uris)
                self._check_timings(n, "answer_stream", data["timings_ms"])

    def _chat_body(self, coll: str, stream: bool) -> dict[str, Any]:
        return {"model": coll, "stream": stream, "messages": [
            {"role": "user", "content": f"Tell me about {self._query(coll)}"}]}  # fmt: skip

    def _chat(self, n: int, reader: Reader, coll: str) -> None:
        body = self._chat_body(coll, False)
        r = self.client.post("/v1/chat/completions", json=body, headers=self._headers(reader))
        if not self._visible(reader, coll):
            self._missing_ok(n, "chat", r, coll)
            return
        extra = r.json()["ragstack"]
        uris = [c["uri"] for c in extra["citations"]] + [s["uri"] for s in extra["sources"]]
        self._check_uris(n, reader, "chat", uris)
        self._check_body(n, reader, coll, "chat", r.text, body["messages"][0]["content"])

    def _chat_stream(self, n: int, reader: Reader, coll: str) -> None:
        body = self._chat_body(coll, True)
        r = self.client.post("/v1/chat/completions", json=body, headers=self._headers(reader))
        if not self._visible(reader, coll):
            self._missing_ok(n, "chat_stream", r, coll)
            return
        self._check_body(n, reader, coll, "chat_stream", r.text, body["messages"][0]["content"])
        for _event, data in _sse(r.text):
            extra = data.get("ragstack")
            if extra:
                uris = [c["uri"] for c in extra["citations"]] + [s["uri"] for s in extra["sources"]]
                self._check_uris(n, reader, "chat_stream", uris)

    def _list(self, n: int, reader: Reader, coll: str) -> None:
        r = self.client.get(f"/v1/collections/{coll}/documents?limit=1000",
                            headers=self._headers(reader))  # fmt: skip
        if not self._visible(reader, coll):
            self._missing_ok(n, "list", r, coll)
            return
        got = {d["uri"] for d in r.json()}
        want = {u for u, d in self.world.by_uri.items()
                if d.collection == coll and self._reads(reader, u)}  # fmt: skip
        if got != want and not (len(want) > 1000 and got <= want and len(got) == 1000):
            self._leak(f"{n} list {reader.name} {len(got - want)} extra, {len(want - got)} missing")
        self._check_body(n, reader, coll, "list", r.text)

    def _get(self, n: int, reader: Reader, coll: str) -> None:
        uri = self.rng.choice([u for u, d in self.world.by_uri.items() if d.collection == coll])
        doc_id = self.world.public_ids[uri]
        r = self.client.get(f"/v1/collections/{coll}/documents/{doc_id}",
                            headers=self._headers(reader))  # fmt: skip
        if self._reads(reader, uri):
            if r.status_code != 200 or r.json()["uri"] != uri:
                self._leak(f"{n} get {reader.name} readable document: {r.status_code}")
            return
        missing = self.client.get(f"/v1/collections/{coll}/documents/d_{n:016x}",
                                  headers=self._headers(reader))  # fmt: skip
        if (r.status_code, r.text) != (missing.status_code, missing.text):
            self._leak(f"{n} get {reader.name} hidden document unlike a missing one")

    def _collections(self, n: int, reader: Reader, coll: str) -> None:
        r = self.client.get("/v1/collections", headers=self._headers(reader))
        seen = {c["name"]: c for c in r.json()}
        for name in ("corp", "big", "acme"):
            want = sum(1 for u, d in self.world.by_uri.items()
                       if d.collection == name and self._reads(reader, u))  # fmt: skip
            got = seen.get(name, {}).get("documents", 0)
            if got != want:
                self._leak(f"{n} collections {reader.name} {name}: {got} documents, not {want}")
            total = sum(1 for u, d in self.world.by_uri.items()
                        if d.collection == name and self.acl.get(u) is not None)  # fmt: skip
            if name in seen and seen[name]["generation"] is not None and want < total:
                self._leak(f"{n} collections {reader.name} {name}: generation shown")

    # -- phases -----------------------------------------------------------------------------

    def fuzz(self, cases: int) -> Report:
        for n in range(cases):
            self.case(n)
        return self.report

    def compare_twins(self, queries: int = 20) -> Report:
        """Each reader's BM25 (and exact dense) results on the real collection against its
        twin's: equal documents, ranks and scores."""
        svc = self.world.svc
        for (reader_name, coll), twin in self.world.twins.items():
            reader = next(r for r in READERS if r.name == reader_name)
            principals = [reader.principal, *reader.groups]
            tenant = reader.tenant if reader.tenant is not None else ""
            modes = ["bm25", "dense", "hybrid"] if coll == "corp" else ["bm25"]
            try:
                svc.collection(twin)
            except Exception:  # the reader reads nothing here: no twin
                continue
            for _ in range(queries):
                query = self._query(coll)
                for mode in modes:
                    real = svc.search(coll, query, principals=principals, tenant=tenant,
                                      mode=mode, top_k=20).hits  # fmt: skip
                    mirror = svc.search(twin, query, principals=principals, tenant=tenant,
                                        mode=mode, top_k=20).hits  # fmt: skip
                    self.report.twin_comparisons += 1
                    a = [self.world.by_uri[h.uri].row for h in real]
                    b = [int(h.uri.rsplit("-", 1)[-1]) for h in mirror]
                    close = all(abs(x.score - y.score) <= 1e-5 * max(1.0, abs(y.score))
                                for x, y in zip(real, mirror, strict=False))  # fmt: skip
                    if a != b or not close:
                        self.report.score_dependence += 1
        return self.report

    def churn(self, seconds: float, readers: int = 3, collection: str = "corp") -> Report:
        """Searches and answers run while a writer narrows, widens and deletes documents."""
        uris = [u for u, d in self.world.by_uri.items() if d.collection == collection]
        log: dict[str, list[tuple[float, frozenset[str] | None]]] = {
            u: [(0.0, self.acl[u])] for u in uris
        }
        stop = threading.Event()
        responses: list[tuple[Reader, float, float, list[str]]] = []
        threads = [threading.Thread(target=self._mutate, args=(collection, uris, log, stop))]
        threads += [
            threading.Thread(target=self._read, args=(i, collection, responses, stop))
            for i in range(readers)
        ]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        for reader, start, end, got in responses:
            self.report.churn_responses += 1
            for uri in got:
                # the states the document had while the request ran: any of them may show
                before = [acl for at, acl in log[uri] if at <= start]
                window = [before[-1]] + [acl for at, acl in log[uri] if start < at <= end]
                tenant = self.world.by_uri[uri].tenant
                if not any(reader.reads(acl, tenant) for acl in window):
                    self.report.stale += 1
                    break
        return self.report

    def _mutate(
        self,
        collection: str,
        uris: list[str],
        log: dict[str, list[tuple[float, frozenset[str] | None]]],
        stop: threading.Event,
    ) -> None:
        """Narrow, widen and delete documents through the API as an admin, logging when
        each change had committed (its response arrived)."""
        rng = random.Random(99)
        admin = {"Authorization": f"Bearer {self.world.secrets[ADMIN.name]}"}
        live = list(uris)
        with httpx.Client(base_url=str(self.client.base_url), timeout=120.0) as client:
            while not stop.is_set() and live:
                uri = rng.choice(live)
                path = f"/v1/collections/{collection}/documents/{self.world.public_ids[uri]}"
                pick = rng.random()
                new: frozenset[str] | None
                if pick < 0.1:
                    r, new = client.delete(path, headers=admin), None
                    live.remove(uri)
                elif pick < 0.55:
                    who = rng.choice([*USERS, *GROUPS])
                    r, new = (
                        client.patch(path, json={"allow": [who]}, headers=admin),
                        frozenset({who}),
                    )
                else:
                    r = client.patch(path, json={"public": True}, headers=admin)
                    new = frozenset({PUBLIC})
                if r.status_code in (200, 204):
                    log[uri].append((time.monotonic(), new))
                    self.acl[uri] = new
                    self.report.mutations += 1
                time.sleep(rng.uniform(0.005, 0.03))

    def _read(
        self,
        seed: int,
        collection: str,
        responses: list[tuple[Reader, float, float, list[str]]],
        stop: threading.Event,
    ) -> None:
        """Search (and sometimes ask) as random readers until stopped, recording when each
        request started and ended and which documents came back."""
        rng = random.Random(seed)
        with httpx.Client(base_url=str(self.client.base_url), timeout=120.0) as client:
            while not stop.is_set():
                reader = rng.choice(READERS)
                headers = {"Authorization": f"Bearer {self.world.secrets[reader.name]}"}
                query = " ".join(rng.sample(WORDS, 2))
                start = time.monotonic()
                if rng.random() < 0.8:
                    body = {"collection": collection, "query": query, "top_k": 30,
                            "mode": rng.choice(["bm25", "hybrid", "dense"])}  # fmt: skip
                    r, field_, item = (
                        client.post("/v1/search", headers=headers, json=body),
                        "hits",
                        "uri",
                    )
                else:
                    body = {"collection": collection, "question": f"What about {query}?"}
                    r, field_, item = (
                        client.post("/v1/answer", headers=headers, json=body),
                        "sources",
                        "uri",
                    )
                got = [h[item] for h in r.json().get(field_, [])] if r.status_code == 200 else []
                responses.append((reader, start, time.monotonic(), got))
