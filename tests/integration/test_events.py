"""Progress events over SSE and WebSocket, and an SSE reconnect that misses nothing."""

from __future__ import annotations

import json
from typing import Any

import websockets

from tests.graphs import sampler_graph
from tests.helpers import job_reaches, read_sse, submit


def _check_order(events: list[dict[str, Any]], steps: int) -> None:
    types = [e["type"] for e in events]
    assert types[0] == "queued" and types[1] == "running"
    assert types[-1] == "completed"
    assert types[-2] == "output"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    progress = [e["data"] for e in events if e["type"] == "progress"]
    values = [p["progress"] for p in progress]
    assert values == sorted(values), values
    assert 0 < values[-1] < 1
    sampler_steps = [
        p["step"] for p in progress if p["node_type"] == "KSampler" and p["step"] is not None
    ]
    # One event per step (the last may repeat when the node's finish is reported).
    assert sorted(set(sampler_steps)) == list(range(1, steps + 1)), sampler_steps
    assert sampler_steps == sorted(sampler_steps)
    assert all(p["max"] == steps for p in progress if p["node_type"] == "KSampler" and p["step"])


async def test_progress_over_sse_in_order(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    fake.set_timing(step_time=0.03)
    server = await server_factory(database_url, [fake.url])
    async with server.client() as client:
        job = await submit(client, sampler_graph(steps=8))
        events = await read_sse(client, f"/api/v1/jobs/{job['id']}/events")
    _check_order(events, 8)
    assert all(e["job_id"] == job["id"] for e in events)


async def test_progress_over_websocket(server_factory: Any, fake: Any, tmp_path: Any) -> None:
    fake.set_timing(step_time=0.03)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        job = await submit(client, sampler_graph(steps=6))
    ws_url = server.url.replace("http://", "ws://") + f"/api/v1/jobs/{job['id']}/ws"
    events = []
    async with websockets.connect(ws_url) as socket:
        async for raw in socket:
            events.append(json.loads(raw))
    _check_order(events, 6)


async def test_websocket_for_unknown_job_is_refused(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/jobs/nope/ws"
    try:
        async with websockets.connect(ws_url) as socket:
            await socket.recv()
    except websockets.InvalidStatus as exc:
        assert exc.response.status_code == 403
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4404
    else:
        raise AssertionError("the socket should have been refused")


async def test_sse_reconnect_with_last_event_id_misses_nothing(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        job = await submit(client, sampler_graph(steps=10))
        path = f"/api/v1/jobs/{job['id']}/events"
        first = await read_sse(client, path, limit=4)
        # Disconnected; the job goes on. Reconnect from the last id seen.
        rest = await read_sse(client, path, headers={"Last-Event-ID": str(first[-1]["id"])})
        await job_reaches(client, job["id"], "completed")
        everything = await read_sse(client, path)
    assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
    assert everything[-1]["type"] == "completed"


async def test_all_events_stream(server_factory: Any, fake: Any, tmp_path: Any) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        first = await submit(client, sampler_graph(steps=2, seed=1))
        second = await submit(client, sampler_graph(steps=2, seed=2))
        await job_reaches(client, second["id"], "completed")
        await job_reaches(client, first["id"], "completed")
        events = await read_sse(client, "/api/v1/events?after=0", limit=6)
    assert {e["job_id"] for e in events} <= {first["id"], second["id"]}
    assert events[0]["type"] == "queued"
