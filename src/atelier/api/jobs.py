"""/api/v1/jobs: submit, read, list, cancel, retry, delete."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic_core import from_json, to_json

from atelier.api.deps import (
    BaseUrl,
    Creator,
    JobsDep,
    Owner,
    RuntimeDep,
    base_url_of,
    runtime_of,
)
from atelier.api.idempotency import IdempotencyKey, idempotent
from atelier.api.security import authenticate
from atelier.errors import InvalidRequest, JobNotFound
from atelier.job_state import TERMINAL, JobStatus
from atelier.jobs import lookup
from atelier.jobs.service import JobsService
from atelier.jobs.views import JobCreate, JobPage, JobView
from atelier.runtime import Runtime
from atelier.telemetry import health

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="submit_job",
    responses={200: {"model": JobView, "description": "Finished within Prefer: wait=N"}},
)
async def submit_job(
    body: JobCreate,
    response: Response,
    jobs: JobsDep,
    runtime: RuntimeDep,
    owner: Owner,
    creator: Creator,
    base_url: BaseUrl,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobView:
    """Queue a ComfyUI API-format graph. `Prefer: wait=N` waits up to N seconds for the end."""
    return await accept(
        body, response, jobs, runtime, owner, creator, base_url, prefer, idempotency_key
    )


async def accept(
    body: JobCreate,
    response: Response,
    jobs: JobsService,
    runtime: Runtime,
    owner: str | None,
    creator: str | None,
    base_url: str,
    prefer: str | None,
    idempotency_key: str | None,
) -> JobView:
    """Submit once per Idempotency-Key, point Location at the job, and honour
    `Prefer: wait=N` (200 once finished within N seconds, else 202)."""
    job = await idempotent(
        runtime,
        creator,
        idempotency_key,
        "POST /api/v1/jobs",
        body,
        response,
        create=lambda job_id: jobs.submit(body, owner=creator, base_url=base_url, job_id=job_id),
        replay=lambda job_id: jobs.get(job_id, owner=owner, base_url=base_url),
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    asked, wait = _wait_seconds(prefer, runtime.settings.max_wait_seconds)
    if wait:
        job = await jobs.wait(job.id, wait, owner=owner, base_url=base_url)
        response.headers["Preference-Applied"] = f"wait={wait:g}"
        if job.status in TERMINAL:
            response.status_code = status.HTTP_200_OK
    notes = []
    if asked > wait:
        notes.append(
            f"Prefer: wait={asked:g} is beyond this server's cap; waited {wait:g} seconds "
            "(ATELIER_MAX_WAIT_SECONDS)"
        )
    return _with_warnings(job, runtime, response, notes)


def _with_warnings(
    job: JobView, runtime: Runtime, response: Response, notes: list[str] | None = None
) -> JobView:
    """Say in the answer what the log would otherwise be alone to say: a queued job no
    backend can take now, a wait that was cut short (docs/OPERATIONS.md)."""
    warnings = list(notes or [])
    if job.status == JobStatus.QUEUED:
        warnings.extend(health.capacity_warnings(runtime))
    if warnings:
        response.headers["Atelier-Warning"] = "; ".join(warnings)
        job = job.model_copy(update={"warnings": warnings})
    return job


@router.get("", operation_id="list_jobs")
async def list_jobs(
    jobs: JobsDep,
    owner: Owner,
    base_url: BaseUrl,
    status_filter: Annotated[
        list[str] | None,
        Query(
            alias="status",
            description="queued, running, completed, failed, cancelled; repeat or comma-separate",
        ),
    ] = None,
    label: Annotated[
        list[str] | None, Query(description="key:value; repeat to require several")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    """Newest first, a page at a time: pass `next_cursor` back as `cursor`."""
    statuses = [s.strip() for item in status_filter or [] for s in item.split(",") if s.strip()]
    for item in statuses:
        if item not in {s.value for s in JobStatus}:
            raise InvalidRequest(f"unknown status {item!r}", field="status")
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise InvalidRequest(f"label filter {item!r} is not key:value", field="label")
        labels[key] = value
    return await jobs.find(
        owner=owner, base_url=base_url, statuses=statuses, labels=labels, cursor=cursor, limit=limit
    )


@router.get("/{job_id}", operation_id="get_job", response_model=JobView)
async def get_job(job_id: str, request: Request) -> Response:
    """A job by its id, or by the ComfyUI prompt_id of any of its attempts."""
    # The hottest route of all (dashboards poll it), so it takes the request itself
    # rather than four dependencies (FastAPI resolves each anew for every request), and
    # its JSON comes ready-made from the jobs service's read model.
    caller = await authenticate(request)  # already run for this request: its answer
    runtime, base_url = runtime_of(request), base_url_of(request)
    owner = caller.visible_owner
    try:
        document = await runtime.jobs.status(job_id, owner=owner, base_url=base_url)
    except JobNotFound:
        document = None  # perhaps a prompt id
    if document is not None:
        warnings = health.capacity_warnings(runtime) if document.queued else []
        if not warnings:
            return Response(document.body, media_type="application/json")
        # A queued job no backend can take now: the held document, saying so. (Reading
        # the tables for this made every poll of a queued job a load while the backends
        # were down, the time dashboards poll most.)
        body = from_json(document.body)
        body["warnings"] = warnings
        return Response(
            to_json(body),
            media_type="application/json",
            headers={"Atelier-Warning": "; ".join(warnings)},
        )
    # A prompt id: the job it belongs to.
    warned = Response()
    job = _with_warnings(
        await lookup.get_job(runtime.jobs, job_id, owner=owner, base_url=base_url),
        runtime,
        warned,
    )
    headers = {k: v for k, v in warned.headers.items() if k == "atelier-warning"}
    return Response(job.model_dump_json(), media_type="application/json", headers=headers)


@router.post("/{job_id}/cancel", operation_id="cancel_job")
async def cancel_job(job_id: str, jobs: JobsDep, owner: Owner, base_url: BaseUrl) -> JobView:
    """Queued: cancelled at once. Running: interrupted on its backend, then cancelled."""
    return await jobs.cancel(job_id, owner=owner, base_url=base_url)


@router.post("/{job_id}/retry", operation_id="retry_job", status_code=status.HTTP_202_ACCEPTED)
async def retry_job(job_id: str, jobs: JobsDep, owner: Owner, base_url: BaseUrl) -> JobView:
    """Queue a failed or cancelled job again; it runs as a new attempt."""
    return await jobs.retry(job_id, owner=owner, base_url=base_url)


@router.delete("/{job_id}", operation_id="delete_job", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(job_id: str, jobs: JobsDep, owner: Owner) -> Response:
    """Delete a finished job and its artifacts (files shared with other jobs stay)."""
    await jobs.delete(job_id, owner=owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _wait_seconds(prefer: str | None, cap: float) -> tuple[float, float]:
    """(seconds asked for, seconds granted)."""
    match = _WAIT.search(prefer) if prefer else None
    if match is None:
        return 0.0, 0.0
    asked = float(match.group(1))
    return asked, min(asked, cap)
