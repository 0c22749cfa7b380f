"""Job events over Server-Sent Events and WebSocket, replayable from the events table.

A stream first replays persisted events after the client's last id (``Last-Event-ID`` or
``?after=``), then follows live ones. It subscribes before replaying, so nothing falls
in the gap; ids already sent are skipped. A job's stream ends after its terminal event.

An SSE frame's ``id`` is the stream's cursor, not always its event's own id (that is in
the data): the highest id up to which this client has every event. On PostgreSQL an event
can commit after one with a higher id; while one may still do so, the cursor stays below
it (``EventBus.settled_id``), so a reconnect with ``Last-Event-ID`` misses nothing (and
may see an event again: the data's ``id`` tells).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from sse_starlette.sse import EventSourceResponse

from atelier.api.deps import BaseUrl, JobsDep, Owner, RuntimeDep
from atelier.db.studio import RunRepository
from atelier.errors import ValidationFailed
from atelier.events import MAX_EVENT_ID, JobEvent
from atelier.runtime import Runtime

router = APIRouter(tags=["events"])

TERMINAL = {"completed", "failed", "cancelled"}
REPLAY_PAGE = 500


async def event_stream(
    runtime: Runtime, job_id: str | None, after: int, *, owner: str | None = None
) -> AsyncIterator[JobEvent]:
    """Events of one job or all jobs; with ``owner``, only that owner's jobs' events."""
    async for event in _event_stream(runtime, job_id, after):
        if owner is None or job_id is not None or await _owner_of(runtime, event) == owner:
            yield event


async def _owner_of(runtime: Runtime, event: JobEvent) -> str | None:
    owners: dict[str, str | None] = _OWNERS.setdefault(id(runtime), {})
    if event.job_id not in owners:
        if len(owners) > 10_000:
            owners.clear()
        async with runtime.ledger.unit() as unit:
            job = await unit.jobs.get(event.job_id)
            if job is None:  # a pipeline run's events carry the run's id
                owners[event.job_id] = (await RunRepository(unit.session).owner_of(event.job_id))[1]
                return owners[event.job_id]
        owners[event.job_id] = job.owner if job is not None else None
    return owners[event.job_id]


_OWNERS: dict[int, dict[str, str | None]] = {}  # job id -> owner (owners never change)


async def _event_stream(
    runtime: Runtime, job_id: str | None, after: int
) -> AsyncIterator[JobEvent]:
    sent: set[int] = set()
    last = after
    async with runtime.bus.subscribe(job_id, kind="stream") as subscription:
        # Replay only up to the bus's horizon (PostgreSQL: the last id with no gap below
        # it that could still commit); live events bring the rest, in order.
        horizon = runtime.bus.horizon()

        async def replay() -> AsyncIterator[JobEvent]:
            nonlocal last
            while True:
                async with runtime.ledger.unit() as unit:
                    rows = await unit.events.after(
                        last, job_id=job_id, limit=REPLAY_PAGE, until=horizon
                    )
                for row in rows:
                    runtime.bus.observe(row.id)
                    last = max(last, row.id)
                    if row.id not in sent:
                        sent.add(row.id)
                        yield JobEvent(row.id, row.job_id, row.type, row.data, row.created_at)
                if len(rows) < REPLAY_PAGE:
                    return

        async for event in replay():
            yield event
            if job_id is not None and event.type in TERMINAL:
                return
        while True:
            if subscription.lagged:
                subscription.lagged = False
                while not subscription.queue.empty():
                    subscription.queue.get_nowait()
                horizon = runtime.bus.horizon()
                async for event in replay():
                    yield event
                    if job_id is not None and event.type in TERMINAL:
                        return
                continue
            event = await subscription.queue.get()
            if event.id in sent or event.id <= after:
                continue
            sent.add(event.id)
            last = max(last, event.id)
            yield event
            if job_id is not None and event.type in TERMINAL:
                return


def _after(last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if last_event_id is None or not last_event_id.strip():
        return 0
    text = last_event_id.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_EVENT_ID):
        raise ValidationFailed(
            "Last-Event-ID must be an event id",
            errors=[{"field": "Last-Event-ID", "reason": f"an integer from 0 to {MAX_EVENT_ID}"}],
        )
    return int(text)


EventId = Annotated[
    int | None, Query(ge=0, le=MAX_EVENT_ID, description="Replay events after this id")
]


def _sse(runtime: Runtime, stream: AsyncIterator[JobEvent], after: int) -> EventSourceResponse:
    async def frames() -> AsyncIterator[dict[str, Any]]:
        cursor = delivered = after
        async for event in stream:
            delivered = max(delivered, event.id)
            settled = runtime.bus.settled_id()
            cursor = max(cursor, delivered if settled is None else min(delivered, settled))
            yield {"id": str(cursor), "event": event.type, "data": json.dumps(event.as_dict())}

    return EventSourceResponse(frames(), ping=15)


@router.get("/api/v1/jobs/{job_id}/events", operation_id="job_events", tags=["jobs"])
async def job_events(
    job_id: str,
    runtime: RuntimeDep,
    jobs: JobsDep,
    owner: Owner,
    base_url: BaseUrl,
    last_event_id: Annotated[str | None, Header()] = None,
    after: EventId = None,
) -> EventSourceResponse:
    """Server-Sent Events of one job; reconnect with Last-Event-ID to miss nothing."""
    await jobs.get(job_id, owner=owner, base_url=base_url)  # 404 for unknown jobs
    start = _after(last_event_id, after)
    return _sse(runtime, event_stream(runtime, job_id, start), start)


@router.get("/api/v1/events", operation_id="all_events")
async def all_events(
    runtime: RuntimeDep,
    owner: Owner,
    last_event_id: Annotated[str | None, Header()] = None,
    after: EventId = None,
    replay: Annotated[
        bool,
        Query(description="false: only events from now on (after a fresh GET /api/v1/jobs)"),
    ] = True,
) -> EventSourceResponse:
    """Server-Sent Events of every job you may see (every job, for admins). A reconnect's
    Last-Event-ID (or `after`) always wins over `replay=false`."""
    start = _after(last_event_id, after)
    if not replay and last_event_id is None and after is None:
        async with runtime.ledger.unit() as unit:
            start = await unit.events.last_id()
    return _sse(runtime, event_stream(runtime, None, start, owner=owner), start)


@router.websocket("/api/v1/jobs/{job_id}/ws")
async def job_websocket(
    websocket: WebSocket,
    job_id: str,
    owner: Owner,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
) -> None:
    """The same events as /events, one JSON text message each; closes after the end.
    Browsers, which cannot send headers here, may pass the key as ?access_token=."""
    runtime: Runtime = websocket.app.state.runtime
    async with runtime.ledger.unit() as unit:
        exists = await unit.jobs.get(job_id, owner=owner) is not None
    if not exists:
        await websocket.close(code=4404, reason="job not found")
        return
    await websocket.accept()
    try:
        async for event in event_stream(runtime, job_id, max(0, after)):
            await websocket.send_json(event.as_dict())
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return
