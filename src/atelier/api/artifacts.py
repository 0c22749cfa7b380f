"""/api/v1/artifacts/{id}: the bytes, with their content type and Range support.

With a key (read scope), or with a signed link (``?expires=&sig=``, as job views give
them) and no key at all.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as StarletteRangeNotSatisfiable

from atelier.api.deps import JobsDep, Owner, RuntimeDep
from atelier.errors import ArtifactNotFound, InvalidRequest, RangeNotSatisfiable

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])


@router.get(
    "/{artifact_id}",
    operation_id="download_artifact",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
)
async def download_artifact(
    artifact_id: str,
    jobs: JobsDep,
    runtime: RuntimeDep,
    owner: Owner,
    range_header: Annotated[str | None, Header(alias="range", include_in_schema=False)] = None,
    expires: Annotated[str | None, Query(max_length=16, description="Signed link")] = None,
    sig: Annotated[str | None, Query(max_length=128, description="Signed link")] = None,
) -> Response:
    artifact = await jobs.artifact(artifact_id, owner=owner)
    store = runtime.store
    elsewhere = await store.download_url(
        artifact.storage_key,
        filename=safe_filename(artifact.filename),
        content_type=artifact.content_type,
    )
    if elsewhere is not None:  # S3: a presigned link or the CDN, not through this server
        return RedirectResponse(elsewhere, status_code=307)
    path = store.local_path(artifact.storage_key)
    if path is not None:
        if not path.exists():
            raise ArtifactNotFound(f"the file of artifact {artifact_id!r} is gone")
        if range_header is not None:
            check_range(range_header, path.stat().st_size)
        return FileResponse(
            path,
            media_type=artifact.content_type,
            filename=safe_filename(artifact.filename),
            content_disposition_type="inline",
        )
    return StreamingResponse(store.read(artifact.storage_key), media_type=artifact.content_type)


def check_range(header: str, size: int) -> None:
    """Refuse a Range header FileResponse would refuse, as a problem document (it answers
    those in plain text). Its own parser decides, so the two cannot disagree."""
    try:
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise InvalidRequest(f"Range: {exc.content}", field="Range") from exc
    except StarletteRangeNotSatisfiable as exc:
        raise RangeNotSatisfiable(f"the file has {size} bytes", size=size) from exc


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/;]+')


def safe_filename(name: str) -> str:
    """A Content-Disposition filename: no directories, control characters or quotes."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")[:200]
    return name or "artifact"
