"""/api/v1/outputs: finished work across jobs, newest first (the web UI's gallery)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from atelier.api.deps import BaseUrl, JobsDep, Owner
from atelier.jobs.views import OutputPage

router = APIRouter(prefix="/api/v1/outputs", tags=["jobs"])


@router.get("", operation_id="list_outputs")
async def list_outputs(
    jobs: JobsDep,
    owner: Owner,
    base_url: BaseUrl,
    workflow: Annotated[
        str | None, Query(max_length=128, description="Only outputs of this workflow")
    ] = None,
    kind: Annotated[Literal["image", "video", "audio", "text", "other"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OutputPage:
    """Every output of the jobs you may see, newest first, with the workflow that made it
    and a download link; pass `next_cursor` back as `cursor`."""
    return await jobs.outputs(
        owner=owner, base_url=base_url, workflow=workflow, kind=kind, cursor=cursor, limit=limit
    )
