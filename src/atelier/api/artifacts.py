"""/api/v1/artifacts/{id}: the bytes, with their content type and Range support."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse

from atelier.api.deps import JobsDep, Owner, RuntimeDep
from atelier.errors import ArtifactNotFound

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])


@router.get(
    "/{artifact_id}",
    operation_id="download_artifact",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
)
async def download_artifact(
    artifact_id: str, jobs: JobsDep, runtime: RuntimeDep, owner: Owner
) -> Response:
    artifact = await jobs.artifact(artifact_id, owner=owner)
    store = runtime.store
    path = store.local_path(artifact.storage_key)
    if path is not None:
        if not path.exists():
            raise ArtifactNotFound(f"the file of artifact {artifact_id!r} is gone")
        return FileResponse(
            path,
            media_type=artifact.content_type,
            filename=artifact.filename,
            content_disposition_type="inline",
        )
    return StreamingResponse(store.read(artifact.storage_key), media_type=artifact.content_type)
