"""``ragstack mcp``: the MCP tools on stdin/stdout, for desktop clients and agent frameworks."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from ragstack.cli.common import AsOption, app, principals_of, service


@app.command("mcp")
def mcp_stdio(
    as_principals: AsOption = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's documents.")] = None,
) -> None:
    """Serve the MCP tools (search, ask, list_collections, get_document) over stdio, acting
    as RAGSTACK_PRINCIPAL or --as: e.g. Claude Desktop's "command": "ragstack", "args":
    ["mcp"]. Every tool call is audited (route mcp:stdio); logs go to stderr."""
    from ragstack.access import Audit
    from ragstack.mcp.server import run_stdio
    from ragstack.mcp.tools import Actor, Tools
    from ragstack.publicids import PublicIds

    svc = service()
    audit = Audit(svc.store)
    principals = tuple(principals_of(as_principals))

    def actor(_context: object) -> Actor:
        started = time.perf_counter()

        def record(_route: str, action: str, status: int, *, collection: str | None = None,
                   query: str | None = None, chunk_ids: list[int] | None = None,
                   detail: dict[str, Any] | None = None) -> None:  # fmt: skip
            audit.record(
                route="mcp:stdio", action=action, status=status,
                latency_ms=(time.perf_counter() - started) * 1000, principals=principals,
                collection=collection, chunk_ids=chunk_ids or [], detail=detail,
                query=svc.redacted(collection, query) if collection and query else None,
            )  # fmt: skip

        return Actor(principals, tenant, False, record)

    run_stdio(Tools(svc, PublicIds(svc.store.secret("ids"))), actor)
