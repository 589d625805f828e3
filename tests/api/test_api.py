"""The REST API in-process (TestClient): auth, roles, ACLs, errors, limits, audit, metrics.

The service underneath is real (SQLite, HNSW, BM25, the pattern PII redactor) on the hashing
embedder; the documents are a few files with different ACLs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragstack.access import Keys
from ragstack.api import create_app
from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import IngestRequest, Ragstack, SourceSpec


@dataclass
class Api:
    client: TestClient
    svc: Ragstack
    admin: dict[str, str]
    writer: dict[str, str]
    eng: dict[str, str]  # reader in group:eng
    outsider: dict[str, str]  # reader in no group
    revoked: dict[str, str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def write(folder: Path, name: str, text: str, acl: dict[str, object]) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    (folder / f"{name}.acl.json").write_text(json.dumps(acl), encoding="utf-8")


def make_api(tmp_path: Path, **settings: object) -> Api:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "embedder": "hashing",
        "principal": "user:admin",
        "chunk_max_tokens": 64,
        "chunk_overlap_tokens": 8,
        **settings,
    }
    svc = build(Settings(**values))  # type: ignore[arg-type]
    docs = tmp_path / "docs"
    write(docs, "eng/deploy.md", "# Deploy\n\nThe deploy pipeline runs canary releases.",
          {"allow": ["group:eng"]})  # fmt: skip
    write(docs, "hr/salaries.md", "# Salaries\n\nSalary bands and the deploy bonus budget.",
          {"allow": ["group:hr"]})  # fmt: skip
    write(docs, "public/faq.md", "# FAQ\n\nHow do I deploy? Ask the deploy team.",
          {"public": True})  # fmt: skip
    sources = [SourceSpec(str(docs / "eng")), SourceSpec(str(docs / "public"))]
    svc.ingest(IngestRequest("kb", sources), principal="user:admin")
    svc.ingest(IngestRequest("hr-only", [SourceSpec(str(docs / "hr"))]), principal="user:hr")
    keys = Keys(svc.store)
    _, admin = keys.create("user:root", role="admin")
    _, writer = keys.create("user:wendy", role="writer", groups=["group:eng"])
    _, eng = keys.create("user:alice", groups=["group:eng"])
    _, outsider = keys.create("user:bob")
    info, revoked = keys.create("user:eve")
    keys.revoke(info.key_id)
    client = TestClient(create_app(svc), raise_server_exceptions=False)
    return Api(client, svc, bearer(admin), bearer(writer), bearer(eng), bearer(outsider),
               bearer(revoked))  # fmt: skip


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["status"] == response.status_code  # type: ignore[attr-defined]
    error: dict[str, object] = body["error"]
    return error


def test_health_needs_no_key_and_everything_else_does(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    for method, path in [("get", "/v1/collections"), ("post", "/v1/search"),
                         ("post", "/v1/answer"), ("get", "/metrics"), ("get", "/v1/audit"),
                         ("get", "/v1/keys")]:  # fmt: skip
        r = api.client.request(method.upper(), path, json={})
        assert r.status_code == 401, path
        assert error_of(r)["code"] == "unauthenticated"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    for bad in (api.revoked, bearer("rsk_nope_nope"), bearer("not-a-key"), {"X-API-Key": "x"}):
        r = api.client.get("/v1/collections", headers=bad)
        assert r.status_code == 401 and error_of(r)["message"] == "invalid or revoked API key"


def test_search_sees_only_what_the_key_may_read(api: Api) -> None:
    body = {"collection": "kb", "query": "deploy", "top_k": 10}
    eng = api.client.post("/v1/search", json=body, headers=api.eng).json()
    outsider = api.client.post("/v1/search", json=body, headers=api.outsider).json()
    assert {Path(h["uri"]).name for h in eng["hits"]} == {"deploy.md", "faq.md"}
    assert {Path(h["uri"]).name for h in outsider["hits"]} == {"faq.md"}
    # a collection the key cannot see is exactly as missing as one that does not exist
    hidden = api.client.post("/v1/search", json={**body, "collection": "hr-only"},
                             headers=api.eng)  # fmt: skip
    missing = api.client.post("/v1/search", json={**body, "collection": "nope"}, headers=api.eng)
    assert hidden.status_code == missing.status_code == 404
    assert error_of(hidden)["message"] == "no collection named 'hr-only'"
    assert error_of(missing)["message"] == "no collection named 'nope'"


def test_collections_list_counts_only_readable_documents(api: Api) -> None:
    eng = {c["name"]: c["documents"] for c in
           api.client.get("/v1/collections", headers=api.eng).json()}  # fmt: skip
    outsider = {c["name"]: c["documents"] for c in
                api.client.get("/v1/collections", headers=api.outsider).json()}  # fmt: skip
    assert eng == {"kb": 2} and outsider == {"kb": 1}


def test_roles(api: Api) -> None:
    r = api.client.post("/v1/collections", json={"name": "new"}, headers=api.eng)
    assert r.status_code == 403 and error_of(r)["code"] == "permission_denied"
    r = api.client.post("/v1/collections", json={"name": "new"}, headers=api.writer)
    assert r.status_code == 201 and r.json()["name"] == "new"
    assert api.client.post("/v1/collections", json={"name": "new"},
                           headers=api.writer).status_code == 409  # fmt: skip
    assert api.client.get("/v1/keys", headers=api.writer).status_code == 403
    assert api.client.get("/metrics", headers=api.eng).status_code == 403
    # the owner deletes its own collection; another writer's is not its to delete
    assert api.client.delete("/v1/collections/kb", headers=api.writer).status_code == 403
    assert api.client.delete("/v1/collections/new", headers=api.writer).status_code == 204
    assert "new" not in {c.name for c in api.svc.collections()}


def test_keys_are_created_once_used_and_revoked(api: Api) -> None:
    r = api.client.post("/v1/keys", json={"principal": "user:carol", "groups": ["group:hr"]},
                        headers=api.admin)  # fmt: skip
    assert r.status_code == 201
    made = r.json()
    secret, key_id = made["secret"], made["key"]["key_id"]
    assert secret.startswith(f"rsk_{key_id}_")
    listed = api.client.get("/v1/keys", headers=api.admin).json()
    assert key_id in {k["key_id"] for k in listed} and secret not in json.dumps(listed)
    hr = api.client.get("/v1/collections", headers=bearer(secret)).json()
    assert {c["name"] for c in hr} == {"kb", "hr-only"}
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.admin).json()["revoked_at"]
    assert api.client.get("/v1/collections", headers=bearer(secret)).status_code == 401
    bad = api.client.post("/v1/keys", json={"principal": "group:x"}, headers=api.admin)
    assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_request"


def test_answers_as_json_and_as_server_sent_events(api: Api) -> None:
    body = {"collection": "kb", "question": "How does the deploy pipeline release?"}
    r = api.client.post("/v1/answer", json=body, headers=api.eng)
    assert r.status_code == 200
    answer = r.json()
    assert answer["generator"] == "extractive" and "timings_ms" in answer
    cited = {c["uri"] for c in answer["citations"]}
    assert cited and all(Path(u).name in {"deploy.md", "faq.md"} for u in cited)
    r = api.client.post("/v1/answer", json={**body, "stream": True, "use_cache": False},
                        headers=api.outsider)  # fmt: skip
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in r.text.strip().split("\n\n")]
    names = [e[0].removeprefix("event: ") for e in events]
    assert names[-1] == "answer" and set(names[:-1]) <= {"delta"}
    final = json.loads(events[-1][1].removeprefix("data: "))
    assert all(Path(c["uri"]).name == "faq.md" for c in final["citations"])
    assert "deploy.md" not in r.text


def test_error_shapes_for_bad_requests(api: Api) -> None:
    r = api.client.post("/v1/search", json={"collection": "kb"}, headers=api.eng)
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_request"
    assert "query" in str(error_of(r)["message"])
    r = api.client.post("/v1/search", json={"collection": "kb", "query": "x", "top_k": 0},
                        headers=api.eng)  # fmt: skip
    assert r.status_code == 422
    r = api.client.post("/v1/search", content=b"{not json", headers={
        **api.eng, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_request"
    r = api.client.post("/v1/search", json={"collection": "kb", "query": " "}, headers=api.eng)
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_input"
    r = api.client.get("/v1/nowhere", headers=api.eng)
    assert r.status_code == 404


def test_body_limit(tmp_path: Path) -> None:
    api = make_api(tmp_path, api_max_body_bytes=2048)
    big = {"collection": "kb", "query": "x" * 4000}
    r = api.client.post("/v1/search", json=big, headers=api.eng)
    assert r.status_code == 413 and error_of(r)["code"] == "document_too_large"


def test_rate_limit_per_key(tmp_path: Path) -> None:
    api = make_api(tmp_path, api_rate_per_s=0.5, api_burst=3)
    codes = [api.client.get("/v1/collections", headers=api.eng).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = api.client.get("/v1/collections", headers=api.eng)
    assert r.status_code == 429 and error_of(r)["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    # another key has its own bucket
    assert api.client.get("/v1/collections", headers=api.outsider).status_code == 200


def test_audit_log_is_redacted_and_exportable(api: Api) -> None:
    query = "deploy help for jane.doe@example.com please"
    hits = api.client.post("/v1/search", json={"collection": "kb", "query": query},
                           headers=api.eng).json()["hits"]  # fmt: skip
    api.client.post("/v1/search", json={"collection": "hr-only", "query": "x"}, headers=api.eng)
    rows = api.client.get("/v1/audit?action=search", headers=api.admin).json()
    ok, hidden = rows[1], rows[0]  # newest first
    assert ok["status"] == 200 and ok["route"] == "/v1/search"
    assert ok["chunk_ids"] == [h["chunk_id"] for h in hits]
    assert "jane.doe@example.com" not in json.dumps(rows) and "<EMAIL" in ok["query"]
    assert ok["principals"] == ["user:alice", "group:eng"]
    assert hidden["status"] == 404 and hidden["chunk_ids"] == []
    lines = api.client.get("/v1/audit?format=jsonl", headers=api.admin).text.splitlines()
    assert [json.loads(line)["id"] for line in lines][:2] == [hidden["id"], ok["id"]]
    assert api.client.get("/v1/audit", headers=api.eng).status_code == 403


def test_metrics(api: Api) -> None:
    api.client.post("/v1/search", json={"collection": "kb", "query": "deploy"}, headers=api.eng)
    api.client.post("/v1/answer", json={"collection": "kb", "question": "deploy?"},
                    headers=api.eng)  # fmt: skip
    text = api.client.get("/metrics", headers=api.admin).text
    assert 'ragstack_requests_total{method="POST",route="/v1/search",status="200"} 1.0' in text
    assert 'ragstack_answer_cache_total{outcome="miss"} 1.0' in text
    assert 'ragstack_documents{collection="kb"} 2.0' in text
    assert 'ragstack_index_bytes{collection="kb",index="dense"}' in text
    assert "ragstack_request_seconds_bucket" in text


def test_openapi_documents_every_route(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/search", "/v1/answer", "/v1/collections", "/v1/collections/{name}",
            "/v1/keys", "/v1/keys/{key_id}", "/v1/audit", "/healthz", "/readyz",
            "/metrics"} <= paths  # fmt: skip
    assert "ErrorOut" in spec["components"]["schemas"]
    assert spec["paths"]["/v1/search"]["post"]["responses"]["401"]


def test_documents_are_listed_read_and_deleted_within_the_acl(api: Api) -> None:
    eng = api.client.get("/v1/collections/kb/documents", headers=api.eng).json()
    outsider = api.client.get("/v1/collections/kb/documents", headers=api.outsider).json()
    assert {Path(d["uri"]).name for d in eng} == {"deploy.md", "faq.md"}
    assert [Path(d["uri"]).name for d in outsider] == ["faq.md"]
    deploy = next(d for d in eng if d["uri"].endswith("deploy.md"))
    detail = api.client.get(f"/v1/collections/kb/documents/{deploy['id']}", headers=api.eng)
    assert detail.status_code == 200
    chunks = detail.json()["chunks"]
    assert chunks and "canary" in " ".join(c["text"] for c in chunks)
    assert detail.json()["chunk_count"] == len(chunks)
    hidden = api.client.get(f"/v1/collections/kb/documents/{deploy['id']}",
                            headers=api.outsider)  # fmt: skip
    missing = api.client.get("/v1/collections/kb/documents/d_0000000000000001",
                             headers=api.outsider)  # fmt: skip
    assert hidden.status_code == missing.status_code == 404
    assert error_of(hidden) == error_of(missing)
    assert error_of(hidden)["message"] == "no such document in this collection"
    assert str(deploy["id"]).startswith("d_") and str(api.svc.documents("kb")[0].id) not in str(
        error_of(hidden)
    )
    # deleting needs a writer who can read it; then it is gone from SQL and the indexes
    url = f"/v1/collections/kb/documents/{deploy['id']}"
    assert api.client.delete(url, headers=api.eng).status_code == 403
    assert api.client.delete(url, headers=api.writer).status_code == 204
    assert api.client.get(url, headers=api.eng).status_code == 404
    hits = api.client.post("/v1/search", json={"collection": "kb", "query": "canary deploy"},
                           headers=api.eng).json()["hits"]  # fmt: skip
    assert all(not h["uri"].endswith("deploy.md") for h in hits)
    assert api.svc.check_index("kb").ok
    rows = api.client.get("/v1/audit?action=delete", headers=api.admin).json()
    assert rows[0]["status"] == 204 and rows[0]["detail"]["document_id"] == deploy["id"]


def test_openai_compatible_chat_completions(api: Api) -> None:
    body = {
        "model": "kb",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "How does the deploy pipeline release?"}],
        "temperature": 0.2,
    }  # fmt: skip
    r = api.client.post("/v1/chat/completions", json=body, headers=api.eng)
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "kb"
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant" and data["choices"][0]["finish_reason"] == "stop"
    extra = data["ragstack"]
    assert extra["citations"] and "\n\nReferences:\n[1] " in message["content"]
    for s in extra["sources"]:
        assert f"[{s['number']}] " in message["content"] and s["uri"] in message["content"]
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    r = api.client.post("/v1/chat/completions", json={**body, "stream": True},
                        headers=api.outsider)  # fmt: skip
    lines = [x.removeprefix("data: ") for x in r.text.split("\n\n") if x]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "References:" in text and "deploy.md" not in r.text
    assert all(Path(c["uri"]).name == "faq.md" for c in chunks[-1]["ragstack"]["citations"])
    system_only = {"model": "kb", "messages": [{"role": "system", "content": "x"}]}
    bad = api.client.post("/v1/chat/completions", headers=api.eng, json=system_only)
    assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_input"
    hidden = api.client.post("/v1/chat/completions", headers=api.eng,
                             json={**body, "model": "hr-only"})  # fmt: skip
    assert hidden.status_code == 404


def test_uploads_become_an_ingest_job_with_per_file_errors(api: Api) -> None:
    files = [
        ("files", ("runbook.md", b"# Runbook\n\nRestart the canary with the rollback lever.",
                   "text/markdown")),
        ("files", ("broken.pdf", b"%PDF-1.7 this is not really a pdf", "application/pdf")),
    ]  # fmt: skip
    r = api.client.post("/v1/collections/kb/documents", files=files,
                        data={"allow": ["group:eng"]}, headers=api.writer)  # fmt: skip
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running", "completed")
    assert job["sources"] == ["runbook.md", "broken.pdf"]
    done = api.client.app.state.api.jobs.wait(job["id"])  # type: ignore[attr-defined]
    assert done.status == "completed", done
    got = api.client.get(f"/v1/jobs/{job['id']}", headers=api.writer).json()
    assert got["counts"]["ingested"] == 1 and got["counts"]["failed"] == 1
    assert [e["uri"].rsplit("/", 1)[-1] for e in got["errors"]] == ["broken.pdf"]
    assert got["progress"]["done"] == 2
    # the ACL given at upload holds: eng reads it, an outsider neither reads it nor its job
    eng = api.client.post("/v1/search", json={"collection": "kb", "query": "rollback lever"},
                          headers=api.eng).json()["hits"]  # fmt: skip
    assert eng and eng[0]["uri"].endswith("runbook.md")
    out = api.client.post("/v1/search", json={"collection": "kb", "query": "rollback lever"},
                          headers=api.outsider).json()["hits"]  # fmt: skip
    assert all(not h["uri"].endswith("runbook.md") for h in out)
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.outsider).status_code == 404
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.admin).status_code == 200
    # readers cannot upload; nothing to ingest is a clear error
    assert api.client.post("/v1/collections/kb/documents", files=files[:1],
                           headers=api.eng).status_code == 403  # fmt: skip
    r = api.client.post("/v1/collections/kb/documents", data={"public": "true"},
                        headers=api.writer)  # fmt: skip
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_input"


def test_upload_limits(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_file_bytes=4096, api_max_upload_bytes=64 * 1024)
    big = ("files", ("big.txt", b"word " * 2000, "text/plain"))
    r = api.client.post("/v1/collections/kb/documents", files=[big], headers=api.writer)
    assert r.status_code == 413 and "big.txt" in str(error_of(r)["message"])
    huge = ("files", ("huge.txt", b"x" * 100_000, "text/plain"))
    r = api.client.post("/v1/collections/kb/documents", files=[huge], headers=api.writer)
    assert r.status_code == 413
    assert not list((tmp_path / "data" / "uploads").rglob("*.part"))


def test_request_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The timeout leaves room for the next request on a loaded two-core CI machine (0.2 s did not)
    api = make_api(tmp_path, api_timeout_s=1.0)
    real = api.svc.search

    def slow(*args: object, **kwargs: object) -> object:
        time.sleep(3.0)  # a stuck dependency, faked: the real search takes milliseconds
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api.svc, "search", slow)
    r = api.client.post("/v1/search", json={"collection": "kb", "query": "deploy"},
                        headers=api.eng)  # fmt: skip
    assert r.status_code == 504 and error_of(r)["code"] == "timeout"
    assert api.client.get("/v1/collections", headers=api.eng).status_code == 200


def test_audit_keeps_strings_any_json_response_can_carry(api: Api) -> None:
    """Found by schemathesis: a path parameter with a lone surrogate reached the audit log and
    made GET /v1/audit a 500."""
    r = api.client.delete("/v1/keys/%ED%A0%80abc", headers=api.admin)
    assert r.status_code == 404
    # a row with a lone surrogate, as the path parameter decoded to; it must read back
    from ragstack.access import Audit

    Audit(api.svc.store).record(route="/v1/keys/{key_id}", action="key_revoke", status=404,
                                latency_ms=1.0, detail={"key_id": "x\udafey"})  # fmt: skip
    rows = api.client.get("/v1/audit", headers=api.admin)
    assert rows.status_code == 200
    # the server's own row for the DELETE is committed by its audit writer, maybe after ours
    assert "x?y" in [row["detail"].get("key_id") for row in rows.json()[:2]]
    assert api.client.get("/v1/audit?format=jsonl", headers=api.admin).status_code == 200


def test_ids_beyond_sql_integers_are_invalid_requests(api: Api) -> None:
    """Found by schemathesis: before_id=2**70 reached SQLite and made GET /v1/audit a 500."""
    huge = 2**70
    r = api.client.get(f"/v1/audit?before_id={huge}", headers=api.admin)
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_request"
    # document ids are public names now: an integer, huge or not, names no document
    r = api.client.get(f"/v1/collections/kb/documents/{huge}", headers=api.eng)
    assert r.status_code == 404
    r = api.client.delete(f"/v1/collections/kb/documents/{huge}", headers=api.writer)
    assert r.status_code == 404
    r = api.client.get("/v1/collections/kb/documents/d_ffffffffffffffff", headers=api.eng)
    assert r.status_code == 404


def test_buffered_audit_reads_back_every_row_recorded_before_it(api: Api) -> None:
    """The server's audit writer commits off the request path; a read waits for it."""
    import threading

    from ragstack.access import Audit

    audit = Audit(api.svc.store, buffered=True)

    def burst(n: int) -> None:
        for i in range(50):
            audit.record(route="/v1/search", action="search", status=200, latency_ms=1.0,
                         key_id=f"k{n}", detail={"i": i})  # fmt: skip

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = audit.entries(limit=1000, action="search")
    mine = [r for r in rows if r.key_id in {"k0", "k1", "k2", "k3"}]
    assert len(mine) == 200
    assert sorted(r.detail["i"] for r in mine if r.key_id == "k2") == list(range(50))
    # a commit that fails (here: the table is gone) is logged and the writer goes on
    from sqlalchemy import text

    with api.svc.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    audit.record(route="/v1/search", action="search", status=200, latency_ms=1.0, key_id="lost")
    audit.flush()
    with api.svc.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
    audit.record(route="/v1/search", action="search", status=200, latency_ms=1.0, key_id="kept")
    audit.close()
    keys = [r.key_id for r in Audit(api.svc.store).entries(limit=5)]
    assert "kept" in keys and "lost" not in keys


def test_searches_are_audited_by_the_time_an_admin_reads(api: Api) -> None:
    for i in range(20):
        r = api.client.post("/v1/search", json={"collection": "kb", "query": f"deploy {i}"},
                            headers=api.eng)  # fmt: skip
        assert r.status_code == 200
    rows = api.client.get("/v1/audit?action=search&limit=20", headers=api.admin).json()
    assert [row["query"] for row in rows] == [f"deploy {i}" for i in reversed(range(20))]
