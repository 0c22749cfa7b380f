"""/api/v1/pipelines and /api/v1/runs: start pipeline runs, follow them, steer them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, WebSocket, WebSocketDisconnect, status
from sse_starlette.sse import EventSourceResponse

from atelier.api.deps import BaseUrl, Creator, Owner, StreamsDep
from atelier.api.studio_deps import StudioDep
from atelier.errors import InvalidRequest
from atelier.events import JobEvent
from atelier.jobs.streams import EventStreams
from atelier.production.run_views import PipelineList, Review, RunCreate, RunPage, RunView

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

RUN_STATUSES = {"running", "awaiting_review", "completed", "failed", "cancelled"}
RUN_ENDS = {"completed", "failed", "cancelled"}


@router.get("/pipelines", operation_id="list_pipelines")
async def list_pipelines(studio: StudioDep) -> PipelineList:
    """The built-in pipelines and the JSON Schema of each one's params."""
    return studio.runs.pipelines()


@router.post(
    "/pipelines/{name}/runs", status_code=status.HTTP_202_ACCEPTED, operation_id="start_run"
)
async def start_run(
    name: str,
    body: RunCreate,
    response: Response,
    studio: StudioDep,
    owner: Owner,
    creator: Creator,
    base_url: BaseUrl,
) -> RunView:
    """Start a run; its steps go to the scheduler as soon as their inputs are ready."""
    run = await studio.runs.create(
        name, body.params, owner=owner, creator=creator, base_url=base_url
    )
    response.headers["Location"] = f"/api/v1/runs/{run.id}"
    return run


@router.get("/runs", operation_id="list_runs")
async def list_runs(
    studio: StudioDep,
    owner: Owner,
    base_url: BaseUrl,
    project: Annotated[str | None, Query(max_length=64)] = None,
    status_filter: Annotated[list[str] | None, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunPage:
    statuses = [s.strip() for item in status_filter or [] for s in item.split(",") if s.strip()]
    for item in statuses:
        if item not in RUN_STATUSES:
            raise InvalidRequest(f"unknown status {item!r}", field="status")
    return await studio.runs.find(
        owner=owner,
        project_id=project,
        statuses=statuses,
        cursor=cursor,
        limit=limit,
        base_url=base_url,
    )


@router.get("/runs/{run_id}", operation_id="get_run")
async def get_run(run_id: str, studio: StudioDep, owner: Owner, base_url: BaseUrl) -> RunView:
    """Status, progress, every step (status, job, outputs, scores), segment counts and ETA."""
    return await studio.runs.get(run_id, owner=owner, base_url=base_url)


@router.post("/runs/{run_id}/cancel", operation_id="cancel_run")
async def cancel_run(run_id: str, studio: StudioDep, owner: Owner, base_url: BaseUrl) -> RunView:
    """Cancel every queued and running job of the run; the run ends `cancelled`."""
    return await studio.runs.cancel(run_id, owner=owner, base_url=base_url)


@router.post("/runs/{run_id}/retry", status_code=status.HTTP_202_ACCEPTED, operation_id="retry_run")
async def retry_run(run_id: str, studio: StudioDep, owner: Owner, base_url: BaseUrl) -> RunView:
    """Run the failed, cancelled and rejected steps again; finished steps are kept."""
    return await studio.runs.retry(run_id, owner=owner, base_url=base_url)


@router.post("/runs/{run_id}/approve", operation_id="approve_run")
async def approve_run(
    run_id: str, studio: StudioDep, owner: Owner, base_url: BaseUrl, body: Review | None = None
) -> RunView:
    """Pass the gate(s) awaiting review; the run goes on."""
    body = body or Review()
    return await studio.runs.review(
        run_id, body.step, approve=True, owner=owner, comment=body.comment, base_url=base_url
    )


@router.post("/runs/{run_id}/reject", operation_id="reject_run")
async def reject_run(
    run_id: str, studio: StudioDep, owner: Owner, base_url: BaseUrl, body: Review | None = None
) -> RunView:
    """Fail the gate(s) awaiting review; the run fails (retry rerolls the rejected step)."""
    body = body or Review()
    return await studio.runs.review(
        run_id, body.step, approve=False, owner=owner, comment=body.comment, base_url=base_url
    )


@router.post(
    "/runs/{run_id}/steps/{step}/rerender",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="rerender_step",
)
async def rerender_step(
    run_id: str,
    step: str,
    studio: StudioDep,
    owner: Owner,
    base_url: BaseUrl,
    reseed: Annotated[bool, Query(description="Render with a new seed.")] = False,
) -> RunView:
    """Render one job step again (a segment, say); the steps using it (the join) redo."""
    return await studio.runs.rerender(run_id, step, reseed=reseed, owner=owner, base_url=base_url)


async def run_stream(streams: EventStreams, run_id: str, after: int) -> AsyncIterator[JobEvent]:
    """The run's events (``run.step``, ``run.status``) until it ends."""
    stream = streams.follow(run_id, after)
    try:
        async for event in stream:
            yield event
            if event.type == "run.status" and event.data.get("status") in RUN_ENDS:
                return
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


@router.get("/runs/{run_id}/events", operation_id="run_events")
async def run_events(
    run_id: str,
    streams: StreamsDep,
    studio: StudioDep,
    owner: Owner,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> EventSourceResponse:
    """Server-Sent Events of the run; reconnect with Last-Event-ID to miss nothing."""
    await studio.runs.row(run_id, owner=owner)
    start = after if after is not None else _last_id(last_event_id)

    async def frames() -> AsyncIterator[dict[str, Any]]:
        async for event in run_stream(streams, run_id, start):
            yield {"id": str(event.id), "event": event.type, "data": json.dumps(event.as_dict())}

    return EventSourceResponse(frames(), ping=15)


@router.websocket("/runs/{run_id}/ws")
async def run_websocket(
    websocket: WebSocket,
    run_id: str,
    streams: StreamsDep,
    studio: StudioDep,
    owner: Owner,
    after: int = 0,
) -> None:
    """The same events as /events, one JSON message each; closes after the run ends."""
    try:
        await studio.runs.row(run_id, owner=owner)
    except Exception:
        await websocket.close(code=4404, reason="run not found")
        return
    await websocket.accept()
    try:
        async for event in run_stream(streams, run_id, max(0, after)):
            await websocket.send_json(event.as_dict())
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return


def _last_id(header: str | None) -> int:
    return int(header.strip()) if header and header.strip().isdigit() else 0
