"""Repositories: every query Atelier runs. Each takes the caller's session; none commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.tables import (
    ArtifactRow,
    AttemptRow,
    EventRow,
    JobLabelRow,
    JobRow,
    JobStatus,
    utcnow,
)

JOBS: Table = JobRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: JobRow) -> None:
        self.session.add(job)
        await self.session.flush()  # the job row first: labels refer to it
        for key, value in (job.labels or {}).items():
            self.session.add(JobLabelRow(job_id=job.id, key=key, value=str(value)))
        await self.session.flush()

    async def get(self, job_id: str, *, owner: str | None = None) -> JobRow | None:
        query = select(JobRow).where(JobRow.id == job_id)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_prompt_id(self, prompt_id: str, *, owner: str | None = None) -> JobRow | None:
        """The job one of whose attempts had this ComfyUI prompt id."""
        query = (
            select(JobRow)
            .join(AttemptRow, AttemptRow.job_id == JobRow.id)
            .where(AttemptRow.id == prompt_id)
        )
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def find(
        self,
        *,
        statuses: Sequence[str] = (),
        labels: dict[str, str] | None = None,
        owner: str | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        """Newest first; ``before`` is the (created_at, id) of the last row already seen."""
        query = select(JobRow)
        if statuses:
            query = query.where(JobRow.status.in_(statuses))
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        for key, value in (labels or {}).items():
            label = select(JobLabelRow.job_id).where(
                JobLabelRow.key == key, JobLabelRow.value == value
            )
            query = query.where(JobRow.id.in_(label))
        if before is not None:
            created, job_id = before
            query = query.where(
                or_(
                    JobRow.created_at < created,
                    and_(JobRow.created_at == created, JobRow.id < job_id),
                )
            )
        query = query.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def queue_position(self, job: JobRow) -> int:
        """How many queued jobs will be dispatched before this one (0 = next)."""
        ahead = select(func.count()).where(
            JobRow.status == JobStatus.QUEUED,
            or_(
                JobRow.priority > job.priority,
                and_(
                    JobRow.priority == job.priority,
                    or_(
                        JobRow.created_at < job.created_at,
                        and_(JobRow.created_at == job.created_at, JobRow.id < job.id),
                    ),
                ),
            ),
        )
        return int((await self.session.execute(ahead)).scalar_one())

    async def count_by_status(self, *, owner: str | None = None) -> dict[str, int]:
        query = select(JobRow.status, func.count()).group_by(JobRow.status)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        counts = {status.value: 0 for status in JobStatus}
        for status, count in (await self.session.execute(query)).all():
            counts[status] = int(count)
        return counts

    async def transition(
        self,
        job_id: str,
        allowed: Iterable[JobStatus],
        *,
        attempt_id: str | None = None,
        **values: Any,
    ) -> bool:
        """Change a job only if its status is one of ``allowed``; True if it changed.

        Every state change goes through here, so a late event or a second replica can
        never move a job out of a terminal state. With ``attempt_id``, only the runner of
        the job's current attempt can change it: a stale runner of a requeued job cannot.
        """
        values.setdefault("updated_at", utcnow())
        # A Core UPDATE on the table: this runs for every progress tick, and the ORM's
        # bookkeeping for a bulk update costs more than the statement itself.
        table = JOBS
        query = update(table).where(
            table.c.id == job_id, table.c.status.in_([s.value for s in allowed])
        )
        if attempt_id is not None:
            query = query.where(table.c.prompt_id == attempt_id)
        result = await self.session.execute(query.values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def dispatchable(self, per_owner: int) -> list[JobRow]:
        """The first ``per_owner`` queued jobs of every owner, by priority then age, so
        that one owner's flood cannot hide another owner's job from the scheduler."""
        rank = (
            func.row_number()
            .over(
                partition_by=JobRow.owner,
                order_by=(JobRow.priority.desc(), JobRow.created_at, JobRow.id),
            )
            .label("rank")
        )
        ranked = (
            select(JobRow.id, rank)
            .where(JobRow.status == JobStatus.QUEUED, JobRow.cancel_requested.is_(False))
            .subquery()
        )
        query = (
            select(JobRow)
            .join(ranked, ranked.c.id == JobRow.id)
            .where(ranked.c.rank <= per_owner)
            .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def with_status(self, status: JobStatus) -> list[JobRow]:
        query = select(JobRow).where(JobRow.status == status).order_by(JobRow.created_at)
        return list((await self.session.execute(query)).scalars())

    async def delete(self, job_id: str) -> None:
        await self.session.execute(delete(EventRow).where(EventRow.job_id == job_id))
        await self.session.execute(delete(JobLabelRow).where(JobLabelRow.job_id == job_id))
        await self.session.execute(delete(AttemptRow).where(AttemptRow.job_id == job_id))
        await self.session.execute(delete(JobRow).where(JobRow.id == job_id))

    # Attempts

    async def add_attempt(self, attempt: AttemptRow) -> None:
        self.session.add(attempt)
        await self.session.flush()

    async def attempts(self, job_id: str) -> list[AttemptRow]:
        query = select(AttemptRow).where(AttemptRow.job_id == job_id).order_by(AttemptRow.number)
        return list((await self.session.execute(query)).scalars())

    async def attempts_for(self, job_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        found: dict[str, list[AttemptRow]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return found
        query = (
            select(AttemptRow)
            .where(AttemptRow.job_id.in_(job_ids))
            .order_by(AttemptRow.job_id, AttemptRow.number)
        )
        for attempt in (await self.session.execute(query)).scalars():
            found[attempt.job_id].append(attempt)
        return found

    async def finish_attempt(
        self, attempt_id: str, status: str, error: dict[str, Any] | None = None
    ) -> None:
        await self.session.execute(
            update(AttemptRow)
            .where(AttemptRow.id == attempt_id, AttemptRow.finished_at.is_(None))
            .values(status=status, finished_at=utcnow(), error=error)
        )


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job_id: str, type: str, data: dict[str, Any]) -> EventRow:
        # Core INSERT ... RETURNING: events are the most frequent write of all.
        table = EVENTS
        created = utcnow()
        result = await self.session.execute(
            insert(table)
            .values(job_id=job_id, type=type, data=data, created_at=created)
            .returning(table.c.id)
        )
        return EventRow(
            id=result.scalar_one(), job_id=job_id, type=type, data=data, created_at=created
        )

    async def after(
        self, after_id: int, *, job_id: str | None = None, limit: int = 1000
    ) -> list[EventRow]:
        query = select(EventRow).where(EventRow.id > after_id)
        if job_id is not None:
            query = query.where(EventRow.job_id == job_id)
        query = query.order_by(EventRow.id).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def last_id(self) -> int:
        return int((await self.session.execute(select(func.max(EventRow.id)))).scalar() or 0)


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, artifact: ArtifactRow) -> None:
        self.session.add(artifact)
        await self.session.flush()

    async def get(self, artifact_id: str) -> ArtifactRow | None:
        return await self.session.get(ArtifactRow, artifact_id)

    async def for_jobs(self, job_ids: Sequence[str]) -> dict[str, list[ArtifactRow]]:
        found: dict[str, list[ArtifactRow]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return found
        query = (
            select(ArtifactRow)
            .where(ArtifactRow.job_id.in_(job_ids), ArtifactRow.role == "output")
            .order_by(ArtifactRow.created_at, ArtifactRow.id)
        )
        for artifact in (await self.session.execute(query)).scalars():
            if artifact.job_id is not None:
                found[artifact.job_id].append(artifact)
        return found

    async def delete_for_job(self, job_id: str) -> list[str]:
        """Delete a job's artifacts; return the storage keys no other artifact uses."""
        keys = set(
            (
                await self.session.execute(
                    select(ArtifactRow.storage_key).where(ArtifactRow.job_id == job_id)
                )
            ).scalars()
        )
        await self.session.execute(delete(ArtifactRow).where(ArtifactRow.job_id == job_id))
        if not keys:
            return []
        still_used = set(
            (
                await self.session.execute(
                    select(ArtifactRow.storage_key).where(ArtifactRow.storage_key.in_(keys))
                )
            ).scalars()
        )
        return sorted(keys - still_used)
