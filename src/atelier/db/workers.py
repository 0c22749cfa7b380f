"""The cluster's SQL: registered workers, what runs where, the scheduler's advisory lock,
and procrastinate's schema (PostgreSQL only)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Boolean, Integer, String, Text, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from atelier.db.tables import Base, JobRow, UtcDateTime
from atelier.job_state import JobStatus

SCHEDULER_LOCK = 74202  # pg_advisory_lock key held by the one scheduler of a cluster
SCHEMA_LOCK = 74203  # taken while procrastinate's schema is installed
SCHEDULE_CHANNEL = "atelier_schedule"  # NOTIFY: look at the queue now (the leader LISTENs)


class WorkerRow(Base):
    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    slots: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    checkpoint: Mapped[str | None] = mapped_column(String(512), default=None)
    system_stats: Mapped[dict[str, Any]]
    object_info: Mapped[dict[str, Any] | None] = mapped_column(default=None, deferred=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def heartbeat(self, values: dict[str, Any], *, object_info: bool) -> None:
        """Insert or update one worker's row; ``object_info`` False keeps the stored one
        (it is large and rarely changes)."""
        statement = pg_insert(WorkerRow).values(**values)
        changed = {k: statement.excluded[k] for k in values if k != "name"}
        if not object_info:
            changed.pop("object_info", None)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=["name"], set_=changed)
        )

    async def mark_stopped(self, name: str) -> None:
        await self.session.execute(
            update(WorkerRow).where(WorkerRow.name == name).values(stopped=True)
        )

    async def all(self) -> list[WorkerRow]:
        return list((await self.session.execute(select(WorkerRow))).scalars())

    async def alive(self, since: datetime) -> list[WorkerRow]:
        query = select(WorkerRow).where(
            WorkerRow.heartbeat_at >= since, WorkerRow.stopped.is_(False)
        )
        return list((await self.session.execute(query)).scalars())

    async def object_info(self, name: str) -> dict[str, Any] | None:
        query = select(WorkerRow.object_info).where(WorkerRow.name == name)
        value: dict[str, Any] | None = (await self.session.execute(query)).scalar()
        return value

    async def running_by_backend(self) -> dict[str, int]:
        query = (
            select(JobRow.backend, func.count())
            .where(JobRow.status == JobStatus.RUNNING.value)
            .group_by(JobRow.backend)
        )
        return {str(name): int(count) for name, count in await self.session.execute(query)}

    async def running_jobs_by_backend(self) -> dict[str, list[str]]:
        query = select(JobRow.backend, JobRow.id).where(JobRow.status == JobStatus.RUNNING.value)
        found: dict[str, list[str]] = {}
        for backend, job_id in await self.session.execute(query):
            found.setdefault(str(backend), []).append(job_id)
        return found

    async def running_by_owner(self) -> dict[str | None, int]:
        query = (
            select(JobRow.owner, func.count())
            .where(JobRow.status == JobStatus.RUNNING.value)
            .group_by(JobRow.owner)
        )
        return {owner: int(count) for owner, count in await self.session.execute(query)}

    async def running_elsewhere(self, alive: list[str]) -> list[tuple[str, str | None, str]]:
        """(job id, backend, attempt id) of running jobs on no live worker."""
        query = select(JobRow.id, JobRow.backend, JobRow.attempt_id).where(
            JobRow.status == JobStatus.RUNNING.value
        )
        if alive:
            query = query.where(JobRow.backend.not_in(alive) | JobRow.backend.is_(None))
        rows = await self.session.execute(query)
        return [(job_id, backend, attempt_id or "") for job_id, backend, attempt_id in rows]

    async def running_on(self, backend: str) -> list[JobRow]:
        query = select(JobRow).where(
            JobRow.status == JobStatus.RUNNING.value, JobRow.backend == backend
        )
        return list((await self.session.execute(query)).scalars())


async def procrastinate_schema_missing(session: AsyncSession) -> bool:
    """True until procrastinate's tables exist; taking SCHEMA_LOCK first makes the
    check-then-install of several starting processes happen one at a time."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"))
    found = (await session.execute(text("SELECT to_regclass('procrastinate_jobs')"))).scalar()
    return found is None


async def defer_tasks(
    session: AsyncSession, task_name: str, tasks: list[tuple[str, dict[str, Any]]]
) -> None:
    """Defer procrastinate tasks, (queue, keyword arguments) each, inside the caller's
    transaction, with procrastinate's own SQL function (``procrastinate_defer_jobs_v1``
    in the installed version's sql/schema.sql): committed with the claims they carry or
    not at all, in one statement however many there are. Its insert trigger notifies
    each worker's queue as ``defer_async`` would."""
    if not tasks:
        return
    await session.execute(
        text(
            "SELECT procrastinate_defer_jobs_v1(ARRAY("
            "SELECT ROW(t.queue, CAST(:task AS varchar), 0, NULL, NULL, t.args, NULL)"
            "::procrastinate_job_to_defer_v1 "
            "FROM jsonb_to_recordset(CAST(:tasks AS jsonb)) AS t(queue varchar, args jsonb)))"
        ),
        {
            "task": task_name,
            "tasks": json.dumps([{"queue": queue, "args": args} for queue, args in tasks]),
        },
    )


async def notify_scheduler(session: AsyncSession) -> None:
    """Wake the cluster's scheduler, whichever process leads it (sent at commit)."""
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": SCHEDULE_CHANNEL})


async def take_scheduler_lock(connection: asyncpg.Connection) -> bool:
    """Try to become the cluster's scheduler on this (dedicated) connection."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", SCHEDULER_LOCK))


async def check_connection(connection: asyncpg.Connection) -> None:
    """Raises if the connection (and with it a held advisory lock) is gone."""
    await connection.execute("SELECT 1")
