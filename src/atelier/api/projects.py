"""/api/v1/projects: projects, their bible, characters and reference images; generate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from atelier.api.deps import BaseUrl, Creator, Owner
from atelier.api.studio_deps import StudioDep
from atelier.errors import InvalidRequest
from atelier.production.run_views import GenerateRequest, RunView
from atelier.production.views import (
    Bible,
    BiblePatch,
    BibleView,
    CharacterCreate,
    CharacterList,
    CharacterPatch,
    CharacterView,
    ProjectCreate,
    ProjectPage,
    ProjectPatch,
    ProjectView,
    ReferenceAdd,
)

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])

STATUSES = {"draft", "active", "archived"}


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_project")
async def create_project(
    body: ProjectCreate, response: Response, studio: StudioDep, creator: Creator
) -> ProjectView:
    """A new project, with an empty bible titled after it."""
    project = await studio.projects.create(body, owner=creator)
    response.headers["Location"] = f"/api/v1/projects/{project.id}"
    return project


@router.get("", operation_id="list_projects")
async def list_projects(
    studio: StudioDep,
    owner: Owner,
    status_filter: Annotated[
        list[str] | None, Query(alias="status", description="draft, active, archived")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ProjectPage:
    """Newest first, a page at a time: pass `next_cursor` back as `cursor`."""
    statuses = [s.strip() for item in status_filter or [] for s in item.split(",") if s.strip()]
    for item in statuses:
        if item not in STATUSES:
            raise InvalidRequest(f"unknown status {item!r}", field="status")
    return await studio.projects.find(owner=owner, statuses=statuses, cursor=cursor, limit=limit)


@router.get("/{project_id}", operation_id="get_project")
async def get_project(project_id: str, studio: StudioDep, owner: Owner) -> ProjectView:
    return await studio.projects.get(project_id, owner=owner)


@router.patch("/{project_id}", operation_id="update_project")
async def update_project(
    project_id: str, body: ProjectPatch, studio: StudioDep, owner: Owner
) -> ProjectView:
    """Change the fields given; `defaults` changes only the keys it names."""
    return await studio.projects.update(project_id, body, owner=owner)


@router.post("/{project_id}/archive", operation_id="archive_project")
async def archive_project(project_id: str, studio: StudioDep, owner: Owner) -> ProjectView:
    """Archive: kept and readable, but nothing new is made in it until unarchived."""
    return await studio.projects.archive(project_id, owner=owner)


@router.delete(
    "/{project_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="delete_project"
)
async def delete_project(project_id: str, studio: StudioDep, owner: Owner) -> Response:
    """Delete the project, its bible and characters (its runs and files stay)."""
    await studio.projects.delete(project_id, owner=owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project_id}/bible", operation_id="get_bible")
async def get_bible(project_id: str, studio: StudioDep, owner: Owner) -> BibleView:
    return await studio.projects.bible(project_id, owner=owner)


@router.put("/{project_id}/bible", operation_id="replace_bible")
async def replace_bible(project_id: str, body: Bible, studio: StudioDep, owner: Owner) -> BibleView:
    return await studio.projects.put_bible(project_id, body, owner=owner)


@router.patch("/{project_id}/bible", operation_id="update_bible")
async def update_bible(
    project_id: str, body: BiblePatch, studio: StudioDep, owner: Owner
) -> BibleView:
    return await studio.projects.patch_bible(project_id, body, owner=owner)


@router.post(
    "/{project_id}/characters",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_character",
)
async def create_character(
    project_id: str,
    body: CharacterCreate,
    response: Response,
    studio: StudioDep,
    owner: Owner,
    base_url: BaseUrl,
) -> CharacterView:
    character = await studio.projects.add_character(
        project_id, body, owner=owner, base_url=base_url
    )
    response.headers["Location"] = f"/api/v1/projects/{project_id}/characters/{character.id}"
    return character


@router.get("/{project_id}/characters", operation_id="list_characters")
async def list_characters(
    project_id: str, studio: StudioDep, owner: Owner, base_url: BaseUrl
) -> CharacterList:
    return await studio.projects.characters(project_id, owner=owner, base_url=base_url)


@router.get("/{project_id}/characters/{character}", operation_id="get_character")
async def get_character(
    project_id: str, character: str, studio: StudioDep, owner: Owner, base_url: BaseUrl
) -> CharacterView:
    """A character by id or by name."""
    return await studio.projects.character(project_id, character, owner=owner, base_url=base_url)


@router.patch("/{project_id}/characters/{character}", operation_id="update_character")
async def update_character(
    project_id: str,
    character: str,
    body: CharacterPatch,
    studio: StudioDep,
    owner: Owner,
    base_url: BaseUrl,
) -> CharacterView:
    return await studio.projects.update_character(
        project_id, character, body, owner=owner, base_url=base_url
    )


@router.delete(
    "/{project_id}/characters/{character}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_character",
)
async def delete_character(
    project_id: str, character: str, studio: StudioDep, owner: Owner
) -> Response:
    await studio.projects.delete_character(project_id, character, owner=owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{project_id}/characters/{character}/references",
    status_code=status.HTTP_201_CREATED,
    operation_id="add_reference_image",
)
async def add_reference_image(
    project_id: str,
    character: str,
    body: ReferenceAdd,
    studio: StudioDep,
    owner: Owner,
    base_url: BaseUrl,
) -> CharacterView:
    """Add a reference image: an upload's or earlier job output's `artifact` id, a `url`
    or `base64`. Pipelines condition on the references (the first one first)."""
    return await studio.projects.add_reference(
        project_id, character, body, owner=owner, base_url=base_url
    )


@router.delete(
    "/{project_id}/characters/{character}/references/{artifact_id}",
    operation_id="remove_reference_image",
)
async def remove_reference_image(
    project_id: str,
    character: str,
    artifact_id: str,
    studio: StudioDep,
    owner: Owner,
    base_url: BaseUrl,
) -> CharacterView:
    return await studio.projects.remove_reference(
        project_id, character, artifact_id, owner=owner, base_url=base_url
    )


@router.post(
    "/{project_id}/generate", status_code=status.HTTP_202_ACCEPTED, operation_id="generate"
)
async def generate(
    project_id: str,
    body: GenerateRequest,
    response: Response,
    studio: StudioDep,
    owner: Owner,
    creator: Creator,
    base_url: BaseUrl,
) -> RunView:
    """Make something from the project: duration 0 is a still, up to 5 s one shot, longer
    a video by segments. Answers with the run (follow it at /api/v1/runs/{id})."""
    run = await studio.runs.generate(
        project_id, body, owner=owner, creator=creator, base_url=base_url
    )
    response.headers["Location"] = f"/api/v1/runs/{run.id}"
    return run
