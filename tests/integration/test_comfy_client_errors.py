"""ComfyClient speaks one error tree: a broken backend never leaks ValueError or is ignored.

The backend here is a real HTTP server on a real socket that answers the way a broken
proxy or a half-started ComfyUI does (wrong status, HTML instead of JSON).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from atelier.comfyui.client import ComfyClient
from atelier.errors import BackendProtocolError, BackendUnavailable


@pytest.fixture
async def broken_backend() -> AsyncIterator[str]:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>bad gateway</html>", content_type="text/html")

    async def refused(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/models/{folder}", html)
    app.router.add_post("/upload/image", html)
    app.router.add_post("/queue", refused)
    app.router.add_post("/interrupt", refused)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_unreadable_answers_are_protocol_errors(broken_backend: str) -> None:
    async with ComfyClient(broken_backend) as client:
        with pytest.raises(BackendProtocolError, match="non-JSON"):
            await client.models("checkpoints")
        with pytest.raises(BackendProtocolError, match="unreadable"):
            await client.upload_image(b"png", "a.png")


async def test_refused_commands_are_not_ignored(broken_backend: str) -> None:
    # A 5xx is the backend in trouble: unavailable (retryable), never silently ignored.
    async with ComfyClient(broken_backend) as client:
        with pytest.raises(BackendUnavailable, match="POST /queue answered 500"):
            await client.delete_pending(["p1"])
        with pytest.raises(BackendUnavailable, match="POST /interrupt answered 500"):
            await client.interrupt("p1")
