"""``atelier mcp``: the MCP server over stdio, talking to an Atelier server by URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import Context

from atelier.client import AsyncAtelier
from atelier.mcp.tools import build_server


def run_stdio(url: str | None, api_key: str | None) -> None:
    """Serve MCP on stdin/stdout until the client closes it; every tool call uses the
    SDK against ``url`` with ``api_key``."""

    @asynccontextmanager
    async def connect(ctx: Context) -> AsyncIterator[AsyncAtelier]:
        async with AsyncAtelier(url, api_key=api_key or "") as atelier:
            yield atelier

    build_server(connect).run("stdio")
