"""Helpers for the multi-user tests: API keys, and a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from tests.conftest import free_port


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(
    client: httpx.AsyncClient,
    name: str,
    *scopes: str,
    admin_key: str | None = None,
    **limits: Any,
) -> str:
    """Make a key over the API (anonymously while none exists, then with ``admin_key``)."""
    response = await client.post(
        "/api/v1/admin/keys",
        json={"name": name, "scopes": list(scopes), **limits},
        headers=auth(admin_key) if admin_key else {},
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@dataclass
class Receiver:
    """An aiohttp server that records webhook deliveries; ``fail_first`` answers 500."""

    fail_first: int = 0
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        status = 500 if len(self.answered) < self.fail_first else self.status
        self.answered.append(status)
        if status < 300:
            self.received.append({"body": body, "headers": dict(request.headers)})
            self.arrived.set()
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
