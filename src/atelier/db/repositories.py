"""Repositories: every query Atelier runs. Each takes the caller's session; none commits."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from atelier.db.tables import (
    ArtifactRow,
    AttemptRow,
    EventRow,
    JobLabelRow,
    JobRow,
    utcnow,
)
from atelier.job_state import AttemptStatus, JobStatus, Transition

JOBS: Table = JobRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
LABELS: Table = JobLabelRow.__table__  # type: ignore[assignment]
_JOB_ATTRIBUTES = sa_inspect(JobRow).column_attrs
_NO_GRAPH = defer(JobRow.graph, raiseload=True)
# Statements built once, values passed apart: SQLAlchemy's compiled cache then finds
# them without building and hashing a new statement per call.
_INSERT_EVENT = insert(EVENTS).returning(EVENTS.c.id)


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A queued job as a scheduling round weighs it (no graph, no documents)."""

    id: str
    priority: int
    owner: str | None
    checkpoint: str | None
    vram_required: int | None
    created_at: datetime
    attempt: int


@dataclass
class JobChanges:
    """What a transaction wrote: the jobs whose row, attempts, outputs or events changed,
    and whether the queue did (a job entered or left it). Read models forget these once
    the transaction commits (db/unit.py)."""

    jobs: set[str] = field(default_factory=set)
    queue: bool = False

    def job(self, job_id: str | None, *, queue: bool = False) -> None:
        if job_id is not None:
            self.jobs.add(job_id)
        self.queue = self.queue or queue


@functools.lru_cache(maxsize=256)
def _positions_query(count: int) -> Any:
    """SELECT of ``count`` queue positions, the jobs' values bound by name (p0, c0, i0,
    p1, ...): built once per page size, since building it costs more than running it."""
    queued = JobRow.status == JobStatus.QUEUED

    def ahead(*conditions: Any) -> Any:
        return select(func.count()).where(queued, *conditions).scalar_subquery()

    def position(n: int) -> Any:
        priority = bindparam(f"p{n}", type_=JobRow.priority.type)
        created = bindparam(f"c{n}", type_=JobRow.created_at.type)
        same = JobRow.priority == priority
        return (
            ahead(JobRow.priority > priority)
            + ahead(same, JobRow.created_at < created)
            + ahead(same, JobRow.created_at == created, JobRow.id < bindparam(f"i{n}"))
        )

    return select(*[position(n) for n in range(count)])


class JobRepository:
    def __init__(self, session: AsyncSession, changes: JobChanges | None = None) -> None:
        self.session = session
        self.changes = changes if changes is not None else JobChanges()

    async def add(self, job: JobRow) -> None:
        """Insert a new job and its labels: two Core INSERTs, without the ORM's flush
        (a submit's largest cost after the HTTP layer). ``job`` stays transient."""
        self.changes.job(job.id, queue=True)
        values = {
            attribute.columns[0].key: job.__dict__[attribute.key]
            for attribute in _JOB_ATTRIBUTES
            if attribute.key in job.__dict__
        }
        await self.session.execute(insert(JOBS), values)
        labels = [
            {"job_id": job.id, "key": key, "value": str(value)}
            for key, value in (job.labels or {}).items()
        ]
        if labels:
            await self.session.execute(insert(LABELS), labels)

    async def get(
        self, job_id: str, *, owner: str | None = None, with_graph: bool = False
    ) -> JobRow | None:
        """The job, without its graph unless asked (``job.graph`` raises): the largest
        column, which only the dispatcher and a worker starting the job need."""
        query = select(JobRow).where(JobRow.id == job_id)
        if not with_graph:
            query = query.options(_NO_GRAPH)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRow]:
        """The jobs of these ids that exist, without their graphs (see ``get``)."""
        if not job_ids:
            return []
        query = select(JobRow).options(_NO_GRAPH).where(JobRow.id.in_(set(job_ids)))
        return list((await self.session.execute(query)).scalars())

    async def by_attempt_id(self, attempt_id: str, *, owner: str | None = None) -> JobRow | None:
        """The job one of whose attempts had this id (its ComfyUI prompt id)."""
        query = (
            select(JobRow)
            .join(AttemptRow, AttemptRow.job_id == JobRow.id)
            .where(AttemptRow.id == attempt_id)
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
        """Newest first, without their graphs (see ``get``); ``before`` is the
        (created_at, id) of the last row already seen."""
        query = select(JobRow).options(_NO_GRAPH)
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
        return (await self.queue_positions([job]))[job.id]

    async def queue_positions(self, jobs: Sequence[JobRow]) -> dict[str, int]:
        """``queue_position`` of several jobs in one round trip.

        Each is three counts that read one range of an index (higher priority; same
        priority, older; same priority and time, lower id) rather than one count whose
        OR makes the database read every queued job's row: a hundredfold faster with
        a few thousand queued, and this runs for every submit and status read."""
        if not jobs:
            return {}
        values: dict[str, Any] = {}
        for n, job in enumerate(jobs):
            values.update({f"p{n}": job.priority, f"c{n}": job.created_at, f"i{n}": job.id})
        row = (await self.session.execute(_positions_query(len(jobs)), values)).one()
        return {job.id: int(count) for job, count in zip(jobs, row, strict=True)}

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
        move: Transition,
        *,
        if_attempt: str | None = None,
        **values: Any,
    ) -> bool:
        """Apply one of atelier.job_state's transitions: change the job only if its status
        is one of the move's sources; True if it changed.

        Every state change goes through here (the ledger calls it), so a late event or a
        second replica can never move a job out of a terminal state. With ``if_attempt``,
        only the runner of the job's current attempt can change it: a stale runner of a
        requeued job cannot.
        """
        if move.changes_status:
            values["status"] = move.target
        values.setdefault("updated_at", utcnow())
        # A Core UPDATE on the table: this runs for every progress tick, and the ORM's
        # bookkeeping for a bulk update costs more than the statement itself.
        table = JOBS
        query = update(table).where(
            table.c.id == job_id, table.c.status.in_([s.value for s in move.sources])
        )
        if if_attempt is not None:
            query = query.where(table.c.attempt_id == if_attempt)
        result = await self.session.execute(query.values(**values))
        changed = bool(result.rowcount)  # type: ignore[attr-defined]
        if changed:
            self.changes.job(job_id, queue="status" in values or "priority" in values)
        return changed

    async def dispatchable(self, per_owner: int) -> list[QueuedJob]:
        """The first ``per_owner`` queued jobs of every owner, by priority then age, so
        that one owner's flood cannot hide another owner's job from the scheduler. Only
        the columns a round weighs: a round reads this window every time a slot frees,
        and the graphs are read once per job (``graphs``)."""
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
            select(
                JobRow.id,
                JobRow.priority,
                JobRow.owner,
                JobRow.checkpoint,
                JobRow.vram_required,
                JobRow.created_at,
                JobRow.attempt,
            )
            .join(ranked, ranked.c.id == JobRow.id)
            .where(ranked.c.rank <= per_owner)
            .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
        )
        return [QueuedJob(*row) for row in await self.session.execute(query)]

    async def graphs(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The graphs of these jobs, by id (a job deleted meanwhile is left out)."""
        if not job_ids:
            return {}
        query = select(JobRow.id, JobRow.graph).where(JobRow.id.in_(job_ids))
        return {job_id: graph for job_id, graph in await self.session.execute(query)}

    async def with_status(self, status: JobStatus) -> list[JobRow]:
        query = select(JobRow).where(JobRow.status == status).order_by(JobRow.created_at)
        return list((await self.session.execute(query)).scalars())

    async def delete(self, job_id: str) -> None:
        self.changes.job(job_id, queue=True)
        await self.session.execute(delete(EventRow).where(EventRow.job_id == job_id))
        await self.session.execute(delete(JobLabelRow).where(JobLabelRow.job_id == job_id))
        await self.session.execute(delete(AttemptRow).where(AttemptRow.job_id == job_id))
        await self.session.execute(delete(JobRow).where(JobRow.id == job_id))

    # Attempts

    async def add_attempt(self, attempt: AttemptRow) -> None:
        self.changes.job(attempt.job_id)
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
        self, attempt_id: str, status: AttemptStatus, error: dict[str, Any] | None = None
    ) -> None:
        result = await self.session.execute(
            update(AttemptRow)
            .where(AttemptRow.id == attempt_id, AttemptRow.finished_at.is_(None))
            .values(status=status, finished_at=utcnow(), error=error)
            .returning(AttemptRow.job_id)
        )
        for job_id in result.scalars():
            self.changes.job(job_id)


class EventRepository:
    def __init__(self, session: AsyncSession, changes: JobChanges | None = None) -> None:
        self.session = session
        self.changes = changes if changes is not None else JobChanges()

    async def add(self, job_id: str, type: str, data: dict[str, Any]) -> EventRow:
        self.changes.job(job_id)
        # Core INSERT ... RETURNING: events are the most frequent write of all.
        created = utcnow()
        result = await self.session.execute(
            _INSERT_EVENT, {"job_id": job_id, "type": type, "data": data, "created_at": created}
        )
        return EventRow(
            id=result.scalar_one(), job_id=job_id, type=type, data=data, created_at=created
        )

    async def after(
        self,
        after_id: int,
        *,
        job_id: str | None = None,
        limit: int = 1000,
        until: int | None = None,
    ) -> list[EventRow]:
        query = select(EventRow).where(EventRow.id > after_id)
        if until is not None:
            query = query.where(EventRow.id <= until)
        if job_id is not None:
            query = query.where(EventRow.job_id == job_id)
        query = query.order_by(EventRow.id).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def last_id(self) -> int:
        return int((await self.session.execute(select(func.max(EventRow.id)))).scalar() or 0)


class ArtifactRepository:
    def __init__(self, session: AsyncSession, changes: JobChanges | None = None) -> None:
        self.session = session
        self.changes = changes if changes is not None else JobChanges()

    async def add(self, artifact: ArtifactRow) -> None:
        self.changes.job(artifact.job_id)
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

    async def outputs(
        self,
        *,
        owner: str | None = None,
        workflow: str | None = None,
        kind: str | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[tuple[ArtifactRow, str | None]]:
        """Jobs' outputs with the workflow that made them, newest first; ``owner`` is the
        job's owner (who may see it), ``before`` the (created_at, id) last seen."""
        query = (
            select(ArtifactRow, JobRow.workflow)
            .join(JobRow, JobRow.id == ArtifactRow.job_id)
            .where(ArtifactRow.role == "output")
        )
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        if workflow is not None:
            query = query.where(JobRow.workflow == workflow)
        if kind is not None:
            query = query.where(ArtifactRow.kind == kind)
        if before is not None:
            created, artifact_id = before
            query = query.where(
                or_(
                    ArtifactRow.created_at < created,
                    and_(ArtifactRow.created_at == created, ArtifactRow.id < artifact_id),
                )
            )
        query = query.order_by(ArtifactRow.created_at.desc(), ArtifactRow.id.desc()).limit(limit)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def delete_for_job(self, job_id: str) -> list[str]:
        """Delete a job's artifacts; return the storage keys no other artifact uses."""
        self.changes.job(job_id)
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
