"""/mcp: the MCP tools (atelier.mcp) over streamable HTTP, with the API's own keys.

The endpoint lets in exactly the callers the API would (a valid key, or no key where the
server runs open), answering anyone else 401 problem+json. Each tool call then talks to
this same app in-process through the SDK, carrying the caller's key and address, so
scopes, limits and owner isolation are the API's, checked on every call. Stateless
(no MCP session lives on one replica), JSON answers.

The MCP SDK (about 25 MiB and a second of imports) is loaded by the first admitted
request, not at start: a server nobody asks for MCP never pays for it. Its session
manager then runs in a task of the app's lifespan task group until shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from anyio.abc import TaskGroup, TaskStatus
from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from atelier.api.problems import problem_response
from atelier.api.security import anonymous_allowed, bearer
from atelier.client import AsyncAtelier
from atelier.errors import AtelierError, Unauthorized

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"


class McpEndpoint:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._group: TaskGroup | None = None  # the lifespan's, while the app serves
        self._manager: StreamableHTTPSessionManager | None = None
        self._starting = anyio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await self._admit(request)
        except AtelierError as exc:
            await problem_response(exc, headers=exc.headers or None)(scope, receive, send)
            return
        manager = await self._running_manager()
        await manager.handle_request(scope, receive, send)

    async def _running_manager(self) -> StreamableHTTPSessionManager:
        """The session manager, built and started on first use."""
        async with self._starting:
            if self._manager is None:
                if self._group is None:
                    raise RuntimeError("the MCP endpoint serves only inside the app's lifespan")
                self._manager = await self._group.start(self._run_manager)
        return self._manager

    async def _run_manager(self, *, task_status: TaskStatus[StreamableHTTPSessionManager]) -> None:
        from mcp.server.transport_security import TransportSecuritySettings

        from atelier.mcp.tools import build_server

        server = build_server(self._connect)
        # Builds the session manager; its Starlette wrapper is not used (this class is
        # the endpoint). Callers are checked by key, not by Host header.
        server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager
        async with manager.run():
            task_status.started(manager)
            await anyio.sleep_forever()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def _admit(self, request: Request) -> None:
        runtime: Any = self.app.state.runtime
        token = bearer(request)
        if token is not None:
            if await runtime.security.keys.authenticate(token) is None:
                raise Unauthorized("the API key is not valid or has been revoked")
        elif not await anonymous_allowed(request, runtime):
            raise Unauthorized("an API key is required: send Authorization: Bearer <key>")

    @asynccontextmanager
    async def _connect(self, ctx: Context) -> AsyncIterator[AsyncAtelier]:
        request = ctx.request_context.request
        if not isinstance(request, Request):
            raise Unauthorized("no HTTP request behind this tool call")
        client = request.client
        transport = httpx.ASGITransport(
            app=self.app, client=(client.host, client.port) if client else ("", 0)
        )
        base_url = str(request.base_url).rstrip("/")
        async with AsyncAtelier(
            base_url, api_key=bearer(request) or "", transport=transport
        ) as atelier:
            yield atelier


def install(app: FastAPI) -> None:
    """Route /mcp to the MCP endpoint; ``serving(app)`` must wrap the app's lifespan."""
    endpoint = McpEndpoint(app)
    app.state.mcp = endpoint
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))


def serving(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """Lets the MCP session manager run (from the first request on) while the app serves."""
    endpoint: McpEndpoint = app.state.mcp
    return endpoint.serving()
