"""/api/v1/gallery, /api/v1/models, /api/v1/presets."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from atelier.api.deps import BaseUrl, CallerDep, Owner
from atelier.api.studio_deps import StudioDep
from atelier.production.gallery_views import GalleryPage, ModelsList, PresetsList

router = APIRouter(prefix="/api/v1", tags=["gallery"])


@router.get("/gallery", operation_id="gallery")
async def gallery(
    studio: StudioDep,
    caller: CallerDep,
    base_url: BaseUrl,
    project: Annotated[str | None, Query(max_length=64)] = None,
    character: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[Literal["image", "video"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> GalleryPage:
    """Published outputs (one by one, or every output of a published project) with
    thumbnails; with a key, your own unpublished ones too. Open to anonymous callers,
    who see only what is published."""
    if caller.key_id is None:
        visibility, owner = "published", None
    elif caller.admin:
        visibility, owner = "all", None
    else:
        visibility, owner = "published_or_own", caller.owner
    return await studio.gallery.list(
        visibility=visibility,
        owner=owner,
        project_id=project,
        character_id=character,
        kind=kind,
        cursor=cursor,
        limit=limit,
        base_url=base_url,
    )


@router.put(
    "/gallery/{artifact_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="publish"
)
async def publish(artifact_id: str, studio: StudioDep, owner: Owner) -> Response:
    """Publish one output of your runs in the gallery."""
    await studio.gallery.publish(artifact_id, True, owner=owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/gallery/{artifact_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="unpublish"
)
async def unpublish(artifact_id: str, studio: StudioDep, owner: Owner) -> Response:
    await studio.gallery.publish(artifact_id, False, owner=owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/models", operation_id="list_models")
async def list_models(studio: StudioDep) -> ModelsList:
    """Each backend's model files by folder (sizes with `models_dirs`), and the
    workflows it can run."""
    return studio.gallery.models()


@router.get("/presets", operation_id="list_presets")
async def list_presets(studio: StudioDep) -> PresetsList:
    """Quality presets and scene types; a project's `defaults.quality` picks its own."""
    return studio.gallery.presets()
