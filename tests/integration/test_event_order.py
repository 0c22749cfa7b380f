"""A reconnecting SSE client misses no event that committed after a higher id.

On PostgreSQL, transaction A can write event 10, transaction B event 11, and B commit
first. A client that got 11, disconnected and came back with ``Last-Event-ID: 11`` never
saw 10. The chaos suite (bench/chaos.py) met this on PostgreSQL. Now the PostgreSQL event
bus (db/notify.py) delivers an id only once no lower id can still commit, so a stream
holds 11 back until 10 commits, and its cursor (events.EventBus.settled_id) never passes
an id that may still commit.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.graphs import image_graph
from tests.helpers import job_reaches, submit


async def _frames(
    client: httpx.AsyncClient, last_event_id: int, count: int
) -> list[tuple[int, dict[str, Any]]]:
    """(frame id, event) for the next ``count`` events of /api/v1/events."""
    frames: list[tuple[int, dict[str, Any]]] = []
    headers = {"Last-Event-ID": str(last_event_id)}
    async with client.stream("GET", "/api/v1/events", headers=headers) as response:
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "" and "data" in frame:
                frames.append((int(frame["id"]), json.loads(frame["data"])))
                if len(frames) == count:
                    return frames
                frame = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(":")
                frame[key] = value.strip()
    return frames


async def test_reconnect_gets_an_event_that_committed_late(
    server_factory: Any, postgres_url: str, fake: Any
) -> None:
    server = await server_factory(postgres_url, [fake.url])
    ledger = server.runtime.ledger
    async with server.client() as client:
        job = await submit(client, image_graph())
        await job_reaches(client, job["id"], "completed")
        events = (await client.get(f"/api/v1/jobs/{job['id']}")).json()
        assert events["status"] == "completed"
        async with ledger.unit() as unit:
            last = max(row.id for row in await unit.events.after(0, job_id=job["id"], limit=100))

        written = asyncio.Event()
        release = asyncio.Event()
        late_id: list[int] = []

        async def late_writer() -> None:
            async with ledger.unit() as unit:
                late_id.append((await unit.emit(job["id"], "progress", {"n": "late"})).id)
                written.set()
                await release.wait()  # commits only after the client has gone

        writer = asyncio.create_task(late_writer())
        await written.wait()
        reading = asyncio.create_task(_frames(client, last, 2))
        async with ledger.unit() as unit:
            early = await unit.emit(job["id"], "progress", {"n": "early"})
        await asyncio.sleep(1.0)
        assert not reading.done()  # early is held back while late may still commit
        release.set()
        await writer
        frames = await asyncio.wait_for(reading, 30)
    assert [e["id"] for _, e in frames] == [late_id[0], early.id]  # in id order, none skipped
    assert early.id > late_id[0]
    assert frames[-1][0] == early.id  # settled: the cursor catches up
