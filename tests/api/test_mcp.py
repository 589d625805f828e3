"""The MCP server with the official ``mcp`` SDK as the client: over streamable HTTP under a live
``ragstack serve`` (API keys) and over stdio (``ragstack mcp`` as a subprocess, acting as a
principal). A reader must not see a hidden document through any tool: a hidden collection,
document or chunk answers exactly like a missing one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.api.conftest import Live, live_server

TOOLS = {"search", "ask", "list_collections", "get_document"}
NOWHERE = "c_0123456789abcdef"  # a well-formed chunk id that names nothing


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("mcp")) as server:
        yield server


def http_client(live: Live, who: str) -> Client:
    http = httpx2.AsyncClient(headers=live.headers(who), timeout=60)
    return Client(streamable_http_client(f"{live.url}/mcp", http_client=http))


def stdio_client(live: Live, *principals: str) -> Client:
    args = ["-m", "ragstack", "mcp"]
    for p in principals:
        args += ["--as", p]
    return Client(StdioServerParameters(command=sys.executable, args=args, env=live.env))


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, Any]:
    """``(is_error, structured result or the error text)``."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        return True, " ".join(getattr(c, "text", "") for c in result.content)
    return False, result.structured_content


def files(hits: list[dict[str, Any]]) -> set[str]:
    return {Path(h["uri"]).name for h in hits}


async def benefits_chunk(client: Client) -> dict[str, Any]:
    """A chunk of benefits.md (group:hr only), found by a reader who may read it."""
    error, found = await call(client, "search", collection="handbook", query="learning budget")
    assert not error
    hit: dict[str, Any] = next(h for h in found["hits"] if h["uri"].endswith("benefits.md"))
    return hit


async def check_tools(alice: Client, bob: Client) -> None:
    """What a reader in group:hr (alice) and one in no group (bob) get from each tool."""
    listed = await alice.list_tools()
    assert {t.name for t in listed.tools} == TOOLS
    _, mine = await call(alice, "list_collections")
    assert {c["name"] for c in mine["collections"]} == {"handbook", "hr-only"}
    _, his = await call(bob, "list_collections")
    assert [c["name"] for c in his["collections"]] == ["handbook"]
    assert his["collections"][0]["documents"] == mine["collections"][0]["documents"] - 1

    hit = await benefits_chunk(alice)
    assert hit["chunk_id"].startswith("c_") and hit["document_id"].startswith("d_")
    error, chunk = await call(alice, "get_document", collection="handbook", id=hit["chunk_id"])
    assert not error and chunk["id"] == hit["document_id"] and chunk["uri"] == hit["uri"]
    (only,) = chunk["chunks"]
    assert (only["id"], only["text"]) == (hit["chunk_id"], hit["text"])
    assert (only["char_start"], only["char_end"]) == (hit["char_start"], hit["char_end"])
    error, doc = await call(alice, "get_document", collection="handbook", id=hit["document_id"])
    assert not error and len(doc["chunks"]) == doc["chunk_count"] >= 2
    error, answer = await call(alice, "ask", collection="hr-only",
                               question="How much is the learning budget per year?")  # fmt: skip
    assert not error and answer["references"] and "benefits.md" in answer["references"][0]

    # bob: benefits.md is not there for him, through any tool
    error, found = await call(bob, "search", collection="handbook", query="learning budget")
    assert not error and found["hits"] and "benefits.md" not in files(found["hits"])
    hidden = [await call(bob, "get_document", collection="handbook", id=hit[k])
              for k in ("chunk_id", "document_id")]  # fmt: skip
    missing = [await call(bob, "get_document", collection="handbook", id=NOWHERE),
               await call(bob, "get_document", collection="handbook",
                          id="d" + NOWHERE[1:])]  # fmt: skip
    assert hidden == missing and all(error for error, _ in hidden)
    assert "not_found" in hidden[0][1] and "no such chunk" in hidden[0][1]
    error, answer = await call(bob, "ask", collection="handbook",
                               question="How much is the learning budget per year?")  # fmt: skip
    assert not error and "benefits.md" not in " ".join(answer["references"])
    for tool, args in [("search", {"query": "learning budget"}), ("ask", {"question": "x"})]:
        hidden_one = await call(bob, tool, collection="hr-only", **args)
        missing_one = await call(bob, tool, collection="no-such", **args)
        assert hidden_one[0] and hidden_one[1].replace("hr-only", "X") == (
            missing_one[1].replace("no-such", "X")
        )


def test_mcp_over_http_with_api_keys(live: Live) -> None:
    async def main() -> None:
        async with http_client(live, "alice") as alice, http_client(live, "bob") as bob:
            await check_tools(alice, bob)

    anyio.run(main)
    # every tool call is audited, with the caller's principals and its request id
    rows = httpx.get(f"{live.url}/v1/audit?limit=200", headers=live.headers("admin")).json()
    mcp_rows = [r for r in rows if r["route"] == "/mcp"]
    assert {r["action"] for r in mcp_rows} == {
        "mcp_search", "mcp_ask", "mcp_list_collections", "mcp_get_document",
    }  # fmt: skip
    assert all(r["request_id"] and r["key_id"] for r in mcp_rows)
    assert {tuple(r["principals"]) for r in mcp_rows} == {("user:alice", "group:hr"), ("user:bob",)}
    assert any(r["status"] == 404 for r in mcp_rows)


def test_mcp_over_http_needs_a_key(live: Live) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer rsk_nope_nope"}):
        r = httpx.post(f"{live.url}/mcp", json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["x-request-id"]


def test_mcp_over_stdio_acts_as_its_principal(live: Live) -> None:
    async def main() -> None:
        async with (
            stdio_client(live, "user:alice", "group:hr") as alice,
            stdio_client(live, "user:bob") as bob,
        ):
            await check_tools(alice, bob)

    anyio.run(main)
    rows = httpx.get(f"{live.url}/v1/audit?limit=200", headers=live.headers("admin")).json()
    assert {r["action"] for r in rows if r["route"] == "mcp:stdio"} >= {"mcp_search", "mcp_ask"}
