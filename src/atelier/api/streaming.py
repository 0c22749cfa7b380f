"""Job events over Server-Sent Events and WebSocket (the stream itself: jobs/streams.py).

A stream replays persisted events after the client's last id (``Last-Event-ID`` or
``?after=``), then follows live ones; a job's stream ends after its terminal event.

An SSE frame's ``id`` is the stream's cursor, not always its event's own id (that is in
the data): the highest id up to which this client has every event, so a reconnect with
``Last-Event-ID`` misses nothing (``EventStreams.cursor``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from sse_starlette.sse import EventSourceResponse

from atelier.api.deps import BaseUrl, JobsDep, Owner, StreamsDep
from atelier.errors import ValidationFailed
from atelier.events import MAX_EVENT_ID, JobEvent
from atelier.jobs.streams import EventStreams

router = APIRouter(tags=["events"])


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


def _sse(streams: EventStreams, stream: AsyncIterator[JobEvent], after: int) -> EventSourceResponse:
    async def frames() -> AsyncIterator[dict[str, Any]]:
        cursor = delivered = after
        async for event in stream:
            delivered = max(delivered, event.id)
            cursor = streams.cursor(cursor, delivered)
            yield {"id": str(cursor), "event": event.type, "data": json.dumps(event.as_dict())}

    return EventSourceResponse(frames(), ping=15)


@router.get("/api/v1/jobs/{job_id}/events", operation_id="job_events", tags=["jobs"])
async def job_events(
    job_id: str,
    streams: StreamsDep,
    jobs: JobsDep,
    owner: Owner,
    base_url: BaseUrl,
    last_event_id: Annotated[str | None, Header()] = None,
    after: EventId = None,
) -> EventSourceResponse:
    """Server-Sent Events of one job; reconnect with Last-Event-ID to miss nothing."""
    await jobs.get(job_id, owner=owner, base_url=base_url)  # 404 for unknown jobs
    start = _after(last_event_id, after)
    return _sse(streams, streams.follow(job_id, start), start)


@router.get("/api/v1/events", operation_id="all_events")
async def all_events(
    streams: StreamsDep,
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
        start = await streams.last_id()
    return _sse(streams, streams.follow(None, start, owner=owner), start)


@router.websocket("/api/v1/jobs/{job_id}/ws")
async def job_websocket(
    websocket: WebSocket,
    job_id: str,
    streams: StreamsDep,
    owner: Owner,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
) -> None:
    """The same events as /events, one JSON text message each; closes after the end.
    Browsers, which cannot send headers here, may pass the key as ?access_token=."""
    if not await streams.job_visible(job_id, owner=owner):
        await websocket.close(code=4404, reason="job not found")
        return
    await websocket.accept()
    try:
        async for event in streams.follow(job_id, max(0, after)):
            await websocket.send_json(event.as_dict())
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return
