"""Projects, their story bible and their characters: the studio's own records."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from atelier.db.database import Database
from atelier.db.studio import ProjectRepository
from atelier.db.studio_tables import BibleRow, CharacterRow, ProjectRow
from atelier.db.tables import ArtifactRow, utcnow
from atelier.db.unit import UnitOfWork
from atelier.errors import (
    CharacterExists,
    CharacterNotFound,
    InvalidRequest,
    ProjectArchived,
    ProjectNotFound,
    ValidationFailed,
)
from atelier.media.inputs import MediaInputs
from atelier.production.views import (
    Bible,
    BiblePatch,
    BibleView,
    CharacterCreate,
    CharacterList,
    CharacterPatch,
    CharacterView,
    ProjectCreate,
    ProjectDefaults,
    ProjectPage,
    ProjectPatch,
    ProjectView,
    ReferenceAdd,
    ReferenceView,
)

MAX_REFERENCES = 8


class ProjectsService:
    def __init__(
        self,
        database: Database,
        media: MediaInputs,
        units: Callable[[], Any],
        artifact_url: Callable[[str, str], str],
    ) -> None:
        self.database = database
        self.media = media
        self.units = units  # () -> a UnitOfWork context (the ledger's)
        self.artifact_url = artifact_url  # (base_url, artifact id) -> URL

    # Projects

    async def create(self, body: ProjectCreate, *, owner: str | None) -> ProjectView:
        now = utcnow()
        project = ProjectRow(
            id=str(uuid.uuid4()),
            owner=owner,
            name=body.name,
            description=body.description,
            status=body.status,
            defaults=body.defaults.model_dump(exclude_none=True),
            labels=body.labels,
            published=body.published,
            created_at=now,
            updated_at=now,
        )
        bible = BibleRow(
            project_id=project.id,
            title=body.name,
            description="",
            style={},
            world={},
            updated_at=now,
        )
        async with self.database.transaction() as session:
            await ProjectRepository(session).add(project, bible)
        return project_view(project)

    async def row(self, project_id: str, *, owner: str | None) -> ProjectRow:
        async with self.database.transaction() as session:
            project = await ProjectRepository(session).get(project_id, owner=owner)
        if project is None:
            raise ProjectNotFound(f"no project {project_id!r}")
        return project

    async def get(self, project_id: str, *, owner: str | None) -> ProjectView:
        return project_view(await self.row(project_id, owner=owner))

    async def find(
        self, *, owner: str | None, statuses: list[str], cursor: str | None, limit: int
    ) -> ProjectPage:
        before = decode_cursor(cursor) if cursor else None
        async with self.database.transaction() as session:
            rows = await ProjectRepository(session).find(
                owner=owner, statuses=statuses, before=before, limit=limit + 1
            )
        page = rows[:limit]
        more = len(rows) > limit
        return ProjectPage(
            items=[project_view(p) for p in page],
            next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
        )

    async def update(
        self, project_id: str, body: ProjectPatch, *, owner: str | None
    ) -> ProjectView:
        changes = body.model_dump(exclude_unset=True)
        async with self.database.transaction() as session:
            project = await ProjectRepository(session).get(project_id, owner=owner)
            if project is None:
                raise ProjectNotFound(f"no project {project_id!r}")
            for key, value in changes.items():
                if value is None:
                    raise ValidationFailed(
                        f"{key}: may not be null", errors=[{"field": key, "reason": "null"}]
                    )
                if key == "defaults":
                    # A PATCH of the defaults changes the keys it names.
                    merged = {**project.defaults, **body.defaults.model_dump(exclude_unset=True)}  # type: ignore[union-attr]
                    value = ProjectDefaults.model_validate(merged).model_dump(exclude_none=True)
                setattr(project, key, value)
            project.updated_at = utcnow()
        return project_view(project)

    async def archive(self, project_id: str, *, owner: str | None) -> ProjectView:
        return await self.update(project_id, ProjectPatch(status="archived"), owner=owner)

    async def delete(self, project_id: str, *, owner: str | None) -> None:
        async with self.database.transaction() as session:
            projects = ProjectRepository(session)
            if await projects.get(project_id, owner=owner) is None:
                raise ProjectNotFound(f"no project {project_id!r}")
            await projects.delete(project_id)

    async def writable(self, project_id: str, *, owner: str | None) -> ProjectRow:
        project = await self.row(project_id, owner=owner)
        if project.status == "archived":
            raise ProjectArchived(f"project {project_id} is archived")
        return project

    # The bible

    async def bible(self, project_id: str, *, owner: str | None) -> BibleView:
        await self.row(project_id, owner=owner)
        async with self.database.transaction() as session:
            bible = await ProjectRepository(session).bible(project_id)
        assert bible is not None  # made with the project
        return bible_view(bible)

    async def put_bible(self, project_id: str, body: Bible, *, owner: str | None) -> BibleView:
        return await self._write_bible(project_id, body.model_dump(), owner=owner)

    async def patch_bible(
        self, project_id: str, body: BiblePatch, *, owner: str | None
    ) -> BibleView:
        changes = body.model_dump(exclude_unset=True)
        for key, value in changes.items():
            if value is None:
                raise ValidationFailed(
                    f"{key}: may not be null", errors=[{"field": key, "reason": "null"}]
                )
        return await self._write_bible(project_id, changes, owner=owner)

    async def _write_bible(
        self, project_id: str, values: dict[str, Any], *, owner: str | None
    ) -> BibleView:
        async with self.database.transaction() as session:
            repository = ProjectRepository(session)
            if await repository.get(project_id, owner=owner) is None:
                raise ProjectNotFound(f"no project {project_id!r}")
            bible = await repository.bible(project_id)
            assert bible is not None
            for key, value in values.items():
                setattr(bible, key, value)
            bible.updated_at = utcnow()
        return bible_view(bible)

    # Characters

    async def add_character(
        self, project_id: str, body: CharacterCreate, *, owner: str | None, base_url: str
    ) -> CharacterView:
        await self.writable(project_id, owner=owner)
        now = utcnow()
        character = CharacterRow(
            id=str(uuid.uuid4()),
            project_id=project_id,
            name=body.name,
            description=body.description,
            visual_traits=body.visual_traits,
            personality=body.personality,
            prompt_fragment=body.prompt_fragment,
            lora=body.lora,
            seed=body.seed,
            references=[],
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.database.transaction() as session:
                repository = ProjectRepository(session)
                if await repository.character_named(project_id, body.name) is not None:
                    raise CharacterExists(f"project {project_id} has a {body.name!r} already")
                await repository.add_character(character)
        except IntegrityError as exc:  # the same name at the same moment
            raise CharacterExists(f"project {project_id} has a {body.name!r} already") from exc
        return await self._character_view(character, base_url)

    async def characters(
        self, project_id: str, *, owner: str | None, base_url: str
    ) -> CharacterList:
        await self.row(project_id, owner=owner)
        async with self.database.transaction() as session:
            rows = await ProjectRepository(session).characters(project_id)
        return CharacterList(items=[await self._character_view(c, base_url) for c in rows])

    async def character_row(self, project_id: str, key: str, *, owner: str | None) -> CharacterRow:
        await self.row(project_id, owner=owner)
        async with self.database.transaction() as session:
            character = await ProjectRepository(session).character(project_id, key)
        if character is None:
            raise CharacterNotFound(f"no character {key!r} in project {project_id}")
        return character

    async def character(
        self, project_id: str, key: str, *, owner: str | None, base_url: str
    ) -> CharacterView:
        row = await self.character_row(project_id, key, owner=owner)
        return await self._character_view(row, base_url)

    async def update_character(
        self,
        project_id: str,
        key: str,
        body: CharacterPatch,
        *,
        owner: str | None,
        base_url: str,
    ) -> CharacterView:
        row = await self.character_row(project_id, key, owner=owner)
        changes = body.model_dump(exclude_unset=True)
        for name in ("name", "description", "visual_traits", "personality", "prompt_fragment"):
            if name in changes and changes[name] is None:
                raise ValidationFailed(
                    f"{name}: may not be null", errors=[{"field": name, "reason": "null"}]
                )
        try:
            async with self.database.transaction() as session:
                repository = ProjectRepository(session)
                character = await repository.character(project_id, row.id)
                if character is None:
                    raise CharacterNotFound(f"no character {key!r} in project {project_id}")
                renamed = "name" in changes and changes["name"] != character.name
                if renamed and await repository.character_named(project_id, changes["name"]):
                    raise CharacterExists(f"project {project_id} has a {changes['name']!r}")
                for name, value in changes.items():
                    setattr(character, name, value)
                character.updated_at = utcnow()
        except IntegrityError as exc:
            raise CharacterExists(f"project {project_id} has that name already") from exc
        return await self._character_view(character, base_url)

    async def delete_character(self, project_id: str, key: str, *, owner: str | None) -> None:
        row = await self.character_row(project_id, key, owner=owner)
        async with self.database.transaction() as session:
            await ProjectRepository(session).delete_character(row.id)

    async def add_reference(
        self,
        project_id: str,
        key: str,
        body: ReferenceAdd,
        *,
        owner: str | None,
        base_url: str,
    ) -> CharacterView:
        given = {k: v for k, v in body.model_dump().items() if v is not None}
        if len(given) != 1:
            raise ValidationFailed(
                "give exactly one of artifact, url or base64",
                errors=[
                    {"field": "artifact", "reason": "give exactly one of artifact, url, base64"}
                ],
            )
        row = await self.character_row(project_id, key, owner=owner)
        if len(row.references) >= MAX_REFERENCES:
            raise InvalidRequest(
                f"a character has at most {MAX_REFERENCES} reference images", field="artifact"
            )
        artifact = await self.media.resolve(
            self.units,
            given,
            kind="image",
            field=next(iter(given)),
            owner=owner,
            visible_owner=owner,
            job_id=None,  # type: ignore[arg-type]
        )
        async with self.units() as unit:
            await unit.artifacts.add(artifact)
        return await self.set_references(
            row.id, project_id, [*row.references, artifact.id], base_url
        )

    async def set_references(
        self, character_id: str, project_id: str, references: list[str], base_url: str
    ) -> CharacterView:
        async with self.database.transaction() as session:
            character = await ProjectRepository(session).character(project_id, character_id)
            if character is None:
                raise CharacterNotFound(f"no character {character_id!r}")
            character.references = references
            character.updated_at = utcnow()
        return await self._character_view(character, base_url)

    async def remove_reference(
        self, project_id: str, key: str, artifact_id: str, *, owner: str | None, base_url: str
    ) -> CharacterView:
        row = await self.character_row(project_id, key, owner=owner)
        if artifact_id not in row.references:
            raise CharacterNotFound(f"character {key!r} has no reference {artifact_id!r}")
        kept = [ref for ref in row.references if ref != artifact_id]
        return await self.set_references(row.id, project_id, kept, base_url)

    async def _character_view(self, row: CharacterRow, base_url: str) -> CharacterView:
        artifacts: dict[str, ArtifactRow] = {}
        if row.references:
            async with self.units() as unit:
                unit_: UnitOfWork = unit
                for ref in row.references:
                    found = await unit_.artifacts.get(ref)
                    if found is not None:
                        artifacts[ref] = found
        return CharacterView(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            description=row.description,
            visual_traits=row.visual_traits,
            personality=row.personality,
            prompt_fragment=row.prompt_fragment,
            lora=row.lora,
            seed=row.seed,
            references=[
                ReferenceView(
                    artifact_id=ref,
                    url=self.artifact_url(base_url, ref),
                    width=artifacts[ref].width,
                    height=artifacts[ref].height,
                )
                for ref in row.references
                if ref in artifacts
            ],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def project_view(row: ProjectRow) -> ProjectView:
    return ProjectView(
        id=row.id,
        name=row.name,
        description=row.description,
        status=row.status,
        defaults=ProjectDefaults.model_validate(row.defaults or {}),
        labels={k: str(v) for k, v in (row.labels or {}).items()},
        published=row.published,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def bible_view(row: BibleRow) -> BibleView:
    return BibleView.model_validate(
        {
            "project_id": row.project_id,
            "title": row.title,
            "description": row.description,
            "style": row.style or {},
            "world": row.world or {},
            "updated_at": row.updated_at,
        }
    )


def encode_cursor(created: datetime, row_id: str) -> str:
    raw = json.dumps([created.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("cursor is not one this server issued", field="cursor") from exc
