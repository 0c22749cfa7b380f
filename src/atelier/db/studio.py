"""Repositories of the studio's tables. Each takes the caller's session; none commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.studio_tables import (
    BibleRow,
    CharacterRow,
    ProjectRow,
    RunRow,
    StepRow,
    StudioOutputRow,
)
from atelier.db.tables import ArtifactRow, JobLabelRow, JobRow, utcnow

Cursor = tuple[datetime, str]


class ProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, project: ProjectRow, bible: BibleRow) -> None:
        self.session.add(project)
        await self.session.flush()
        self.session.add(bible)
        await self.session.flush()

    async def get(self, project_id: str, *, owner: str | None) -> ProjectRow | None:
        query = select(ProjectRow).where(ProjectRow.id == project_id)
        if owner is not None:
            query = query.where(ProjectRow.owner == owner)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def find(
        self,
        *,
        owner: str | None,
        statuses: Sequence[str],
        before: Cursor | None,
        limit: int,
    ) -> list[ProjectRow]:
        query = select(ProjectRow)
        if owner is not None:
            query = query.where(ProjectRow.owner == owner)
        if statuses:
            query = query.where(ProjectRow.status.in_(statuses))
        if before is not None:
            created, last_id = before
            query = query.where(
                or_(
                    ProjectRow.created_at < created,
                    and_(ProjectRow.created_at == created, ProjectRow.id < last_id),
                )
            )
        query = query.order_by(ProjectRow.created_at.desc(), ProjectRow.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def delete(self, project_id: str) -> None:
        # Explicit deletes: SQLite does not enforce ON DELETE CASCADE without a pragma.
        await self.session.execute(
            delete(CharacterRow).where(CharacterRow.project_id == project_id)
        )
        await self.session.execute(delete(BibleRow).where(BibleRow.project_id == project_id))
        await self.session.execute(
            update(StudioOutputRow)
            .where(StudioOutputRow.project_id == project_id)
            .values(project_id=None, published=False)
        )
        await self.session.execute(delete(ProjectRow).where(ProjectRow.id == project_id))

    async def bible(self, project_id: str) -> BibleRow | None:
        return await self.session.get(BibleRow, project_id)

    # Characters

    async def add_character(self, character: CharacterRow) -> None:
        self.session.add(character)
        await self.session.flush()

    async def characters(self, project_id: str) -> list[CharacterRow]:
        query = (
            select(CharacterRow)
            .where(CharacterRow.project_id == project_id)
            .order_by(CharacterRow.created_at, CharacterRow.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def character(self, project_id: str, key: str) -> CharacterRow | None:
        """A character of the project by id or by name."""
        query = select(CharacterRow).where(
            CharacterRow.project_id == project_id,
            or_(CharacterRow.id == key, CharacterRow.name == key),
        )
        return (await self.session.execute(query)).scalars().first()

    async def character_named(self, project_id: str, name: str) -> CharacterRow | None:
        query = select(CharacterRow).where(
            CharacterRow.project_id == project_id, CharacterRow.name == name
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def delete_character(self, character_id: str) -> None:
        await self.session.execute(delete(CharacterRow).where(CharacterRow.id == character_id))


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, run: RunRow, steps: Iterable[StepRow]) -> None:
        self.session.add(run)
        await self.session.flush()
        for step in steps:
            self.session.add(step)
        await self.session.flush()

    async def get(self, run_id: str, *, owner: str | None = None) -> RunRow | None:
        query = select(RunRow).where(RunRow.id == run_id)
        if owner is not None:
            query = query.where(RunRow.owner == owner)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def owner_of(self, run_id: str) -> tuple[bool, str | None]:
        """(exists, owner) of a run."""
        row = (await self.session.execute(select(RunRow.owner).where(RunRow.id == run_id))).first()
        return (False, None) if row is None else (True, row[0])

    async def find(
        self,
        *,
        owner: str | None,
        project_id: str | None,
        statuses: Sequence[str],
        before: Cursor | None,
        limit: int,
    ) -> list[RunRow]:
        query = select(RunRow)
        if owner is not None:
            query = query.where(RunRow.owner == owner)
        if project_id is not None:
            query = query.where(RunRow.project_id == project_id)
        if statuses:
            query = query.where(RunRow.status.in_(statuses))
        if before is not None:
            created, last_id = before
            query = query.where(
                or_(
                    RunRow.created_at < created,
                    and_(RunRow.created_at == created, RunRow.id < last_id),
                )
            )
        query = query.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def active_ids(self) -> list[str]:
        """Runs the engine still drives (awaiting_review too: a cancel may arrive)."""
        query = select(RunRow.id).where(
            RunRow.status.in_(["pending", "running", "awaiting_review"])
        )
        return list((await self.session.execute(query)).scalars())

    async def set(self, run_id: str, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        await self.session.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    async def steps(self, run_id: str) -> list[StepRow]:
        query = select(StepRow).where(StepRow.run_id == run_id).order_by(StepRow.position)
        return list((await self.session.execute(query)).scalars())

    async def set_step(
        self, step_id: str, *, allowed: Iterable[str] | None = None, **values: Any
    ) -> bool:
        """Change a step, only from one of ``allowed`` statuses if given; True if changed."""
        values.setdefault("updated_at", utcnow())
        query = update(StepRow).where(StepRow.id == step_id)
        if allowed is not None:
            query = query.where(StepRow.status.in_(list(allowed)))
        result = await self.session.execute(query.values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def run_of_job(self, job_id: str) -> str | None:
        query = select(StepRow.run_id).where(StepRow.job_id == job_id).limit(1)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def job_labelled(self, key: str, value: str) -> JobRow | None:
        """The job a step submitted, found by its label (after a crash mid-submit)."""
        query = (
            select(JobRow)
            .join(JobLabelRow, JobLabelRow.job_id == JobRow.id)
            .where(JobLabelRow.key == key, JobLabelRow.value == value)
            .order_by(JobRow.created_at)
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def jobs(self, job_ids: Sequence[str]) -> dict[str, JobRow]:
        if not job_ids:
            return {}
        query = select(JobRow).where(JobRow.id.in_(list(job_ids)))
        return {job.id: job for job in (await self.session.execute(query)).scalars()}


class OutputRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: StudioOutputRow) -> None:
        if await self.session.get(StudioOutputRow, row.artifact_id) is None:
            self.session.add(row)
            await self.session.flush()

    async def get(self, artifact_id: str) -> StudioOutputRow | None:
        return await self.session.get(StudioOutputRow, artifact_id)

    async def set(self, artifact_id: str, **values: Any) -> None:
        await self.session.execute(
            update(StudioOutputRow)
            .where(StudioOutputRow.artifact_id == artifact_id)
            .values(**values)
        )

    async def gallery(
        self,
        *,
        visibility: str,
        owner: str | None,
        project_id: str | None,
        character_id: str | None,
        kind: str | None,
        before: Cursor | None,
        limit: int,
    ) -> list[tuple[StudioOutputRow, ArtifactRow]]:
        query = select(StudioOutputRow, ArtifactRow).join(
            ArtifactRow, ArtifactRow.id == StudioOutputRow.artifact_id
        )
        """``visibility``: "all" (admins), "published" (anonymous callers), or
        "published_or_own" (the published items and ``owner``'s own)."""
        published_projects = select(ProjectRow.id).where(ProjectRow.published.is_(True))
        published = or_(
            StudioOutputRow.published.is_(True),
            StudioOutputRow.project_id.in_(published_projects),
        )
        if visibility == "published":
            query = query.where(published)
        elif visibility == "published_or_own":
            query = query.where(or_(published, StudioOutputRow.owner == owner))
        if project_id is not None:
            query = query.where(StudioOutputRow.project_id == project_id)
        if character_id is not None:
            query = query.where(StudioOutputRow.character_id == character_id)
        if kind is not None:
            query = query.where(StudioOutputRow.kind == kind)
        if before is not None:
            created, last_id = before
            query = query.where(
                or_(
                    StudioOutputRow.created_at < created,
                    and_(
                        StudioOutputRow.created_at == created,
                        StudioOutputRow.artifact_id < last_id,
                    ),
                )
            )
        query = query.order_by(
            StudioOutputRow.created_at.desc(), StudioOutputRow.artifact_id.desc()
        ).limit(limit)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]
