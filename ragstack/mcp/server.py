"""The MCP server (the official ``mcp`` SDK's ``MCPServer``) over the tools, on two transports:

* **stdio** (``ragstack mcp``, for desktop clients): the server acts as one principal,
  ``RAGSTACK_PRINCIPAL`` or ``--as``, like the CLI; its calls are audited as ``mcp:stdio``.
* **streamable HTTP** under the API at ``/mcp`` (``McpHttp``): every request needs an API key
  (``Authorization: Bearer rsk_...`` or ``X-API-Key``), authenticated and rate-limited by the
  same dependency as every REST route (``ragstack.api.deps.caller``); the key's principals and
  tenant are the ACL filter and its audit rows are the REST routes' kind. Stateless (no
  session to pin a client to one replica). The SDK's DNS-rebinding check is off: it guards
  servers a browser reaches with ambient credentials, and this one takes none (a key in a
  header, never a cookie). The SDK is imported on the first MCP request, off the event loop,
  so the API starts without it.
"""

# No ``from __future__ import annotations``: the SDK reads the tools' annotations at run time
# (the Context parameter, the result models), and ``Context`` is imported inside ``build``.
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ragstack.errors import RagstackError
from ragstack.mcp.tools import Actor, Answer, Collections, Document, SearchResult, Tools

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context, MCPServer

    from ragstack.api.deps import ApiState

log = logging.getLogger("ragstack.mcp")
INSTRUCTIONS = (
    "ragstack: ACL-filtered search and cited answers over document collections. "
    "list_collections shows what you may read; search returns chunks with public ids; "
    "ask answers with numbered citations; get_document reads a chunk (c_...) with its span, "
    "or a document (d_...) with its chunks."
)
CALLER = "ragstack_caller"  # where McpHttp leaves the authenticated caller in the scope state


def build(tools: Tools, actor_of: Callable[["Context"], Actor]) -> "MCPServer":
    """The MCP server: the four tools, each acting as ``actor_of(its request context)``."""
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server: MCPServer = MCPServer("ragstack", instructions=INSTRUCTIONS, log_level="WARNING")

    def call(work: Callable[[], Any]) -> Any:
        try:
            return work()
        except RagstackError as exc:  # ours say what went wrong and reveal nothing hidden
            raise ToolError(f"{exc.code}: {exc}") from exc

    @server.tool(description="Search a collection: the best chunks the caller may read.")
    def search(
        ctx: Context,
        collection: str,
        query: str,
        top_k: int = 10,
        mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
    ) -> SearchResult:
        actor = actor_of(ctx)
        return call(lambda: tools.search(actor, collection, query, top_k, mode))  # type: ignore[no-any-return]

    @server.tool(description="Answer a question from a collection, with numbered citations.")
    def ask(ctx: Context, collection: str, question: str) -> Answer:
        actor = actor_of(ctx)
        return call(lambda: tools.ask(actor, collection, question))  # type: ignore[no-any-return]

    @server.tool(description="The collections the caller can read, with its document counts.")
    def list_collections(ctx: Context) -> Collections:
        actor = actor_of(ctx)
        return call(lambda: tools.list_collections(actor))  # type: ignore[no-any-return]

    @server.tool(
        description="Read a chunk (id c_...: its text and character span in its document) "
        "or a document (id d_...: its chunks) of a collection, by the ids search and ask return."
    )
    def get_document(ctx: Context, collection: str, id: str) -> Document:
        actor = actor_of(ctx)
        return call(lambda: tools.get_document(actor, collection, id))  # type: ignore[no-any-return]

    return server


# -- stdio ---------------------------------------------------------------------------------------


def run_stdio(tools: Tools, actor_of: Callable[["Context"], Actor]) -> None:
    """Serve on stdin/stdout, each call as ``actor_of(its context)``, until the client
    closes the pipe."""
    server = build(tools, actor_of)
    anyio.run(server.run_stdio_async)


# -- streamable HTTP under the API ----------------------------------------------------------------


def _http_actor(ctx: "Context") -> Actor:
    from ragstack.api.deps import Caller

    request = ctx.request_context.request
    who = request.scope.get("state", {}).get(CALLER) if request is not None else None
    if not isinstance(who, Caller):  # McpHttp puts one there before the SDK sees the request
        raise RuntimeError("an MCP request reached a tool without an authenticated caller")
    return Actor(tuple(who.principals), who.tenant, who.key.allows("admin"), who.audit)


class McpHttp:
    """The ``/mcp`` endpoint: authenticates like every route, then hands the request to the
    SDK's stateless streamable-HTTP transport (started on first use, within ``running``)."""

    def __init__(self, api: "ApiState") -> None:
        self.api = api
        self._asgi: ASGIApp | None = None
        self._lock = anyio.Lock()
        self._group: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the app's lifespan: the task group the SDK's session manager runs in."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ragstack.api.deps import caller
        from ragstack.api.errors import error_response

        request = Request(scope, receive)
        headers = request.headers
        try:
            who = await run_in_threadpool(
                caller, request, headers.get("authorization"), headers.get("x-api-key")
            )
        except RagstackError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER] = who
        await (await self._started())(scope, receive, send)

    async def _started(self) -> ASGIApp:
        if self._asgi is None:
            async with self._lock:
                if self._asgi is None:
                    self._asgi = await self._start()
        return self._asgi

    async def _start(self) -> ASGIApp:
        if self._group is None:
            raise RuntimeError("the MCP endpoint runs inside the app's lifespan")
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
        from mcp.server.transport_security import TransportSecuritySettings

        tools = Tools(self.api.svc, self.api.ids)
        server = await anyio.to_thread.run_sync(build, tools, _http_actor)  # the import is slow
        server.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager

        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            async with manager.run():
                task_status.started()
                await anyio.sleep_forever()

        await self._group.start(run)
        log.info("MCP over streamable HTTP started")
        return StreamableHTTPASGIApp(manager)
