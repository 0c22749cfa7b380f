"""/api/v1/uploads: store a media input once, then pass its artifact id as a parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile, status

from atelier.api.deps import BaseUrl, Creator, JobsDep
from atelier.jobs.service import artifact_view
from atelier.jobs.views import ArtifactView

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="upload_input")
async def upload_input(
    file: Annotated[UploadFile, File(description="An image, video or audio file")],
    response: Response,
    jobs: JobsDep,
    creator: Creator,
    base_url: BaseUrl,
) -> ArtifactView:
    """Store an input file (multipart field `file`). Its content type is sniffed, not
    taken from the request; anything but an image, video or audio file is refused. Use
    the returned `id` as a workflow's media parameter, or as `"@artifact:<id>"` in a graph.
    """
    media = jobs.workflows.media
    data = await file.read(media.max_bytes + 1)
    row = await media.from_bytes(
        data, file.filename or "upload", field="file", owner=creator, job_id=None
    )
    async with jobs.ledger.unit() as unit:
        await unit.artifacts.add(row)
    response.headers["Location"] = f"/api/v1/artifacts/{row.id}"
    return artifact_view(row, base_url, jobs.sign_url)
