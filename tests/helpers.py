"""Small waiting and reading helpers for tests that drive a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


async def job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def job_reaches(
    client: httpx.AsyncClient, job_id: str, *statuses: str, timeout: float = 30.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = await job(client, job_id)
        return body if body["status"] in statuses else None

    result: dict[str, Any] = await eventually(check, timeout=timeout)
    return result


async def submit(client: httpx.AsyncClient, graph: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/jobs", json={"graph": graph, **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def read_sse(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Read SSE events until the server ends the stream (or ``limit`` events)."""
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async with client.stream("GET", path, headers=headers or {}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line == "":
                    if "data" in frame:
                        event = json.loads(frame["data"])
                        # The frame id is the stream's cursor: the event's id, or lower
                        # while an earlier id may still commit (api/streaming.py).
                        assert int(frame["id"]) <= event["id"]
                        assert event["type"] == frame.get("event")
                        events.append(event)
                        if limit is not None and len(events) >= limit:
                            return
                    frame = {}
                    continue
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                frame[key] = value[1:] if value.startswith(" ") else value

    await asyncio.wait_for(read(), timeout)
    return events
