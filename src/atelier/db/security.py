"""Queries for API keys, Idempotency-Keys, the audit log and the admin statistics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.tables import (
    ApiKeyRow,
    ArtifactRow,
    AttemptRow,
    AuditRow,
    IdempotencyRow,
    JobRow,
)
from atelier.job_state import JobStatus


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKeyRow) -> None:
        self.session.add(key)
        await self.session.flush()

    async def by_hash(self, key_hash: str) -> ApiKeyRow | None:
        query = select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get(self, key_id: str) -> ApiKeyRow | None:
        return await self.session.get(ApiKeyRow, key_id)

    async def find(self, *, include_revoked: bool = False) -> list[ApiKeyRow]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        return list((await self.session.execute(query)).scalars())

    async def revoke(self, key_id: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def any_exist(self) -> bool:
        """Whether a key was ever made (revoked ones count: the server stays keyed)."""
        return (await self.session.execute(select(ApiKeyRow.id).limit(1))).first() is not None

    async def touch(self, key_id: str, now: datetime) -> None:
        await self.session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now)
        )

    async def running_caps(self) -> dict[str, int]:
        """Per owner, the largest running-jobs override among its live keys."""
        query = (
            select(ApiKeyRow.name, func.max(ApiKeyRow.max_running))
            .where(ApiKeyRow.revoked_at.is_(None), ApiKeyRow.max_running.is_not(None))
            .group_by(ApiKeyRow.name)
        )
        rows = (await self.session.execute(query)).all()
        return {name: int(cap) for name, cap in rows if cap is not None}


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, owner: str, key: str) -> IdempotencyRow | None:
        return await self.session.get(IdempotencyRow, (owner, key))

    async def claim(self, row: IdempotencyRow) -> None:
        """Insert; raises IntegrityError when (owner, key) is already taken."""
        self.session.add(row)
        await self.session.flush()

    async def release(self, owner: str, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyRow).where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
        )

    async def purge_expired(self, now: datetime, *, owner: str | None = None) -> None:
        query = delete(IdempotencyRow).where(IdempotencyRow.expires_at <= now)
        if owner is not None:
            query = query.where(IdempotencyRow.owner == owner)
        await self.session.execute(query)


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: AuditRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def page(self, *, before: int | None, limit: int) -> list[AuditRow]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditRow.id < before)
        return list((await self.session.execute(query)).scalars())


class UsageRepository:
    """What an owner holds now (for quotas) and what the house did (for admin stats)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def jobs_with_status(self, owner: str, status: JobStatus) -> int:
        query = select(func.count()).where(JobRow.owner == owner, JobRow.status == status)
        return int((await self.session.execute(query)).scalar_one())

    async def artifact_bytes(self, owner: str) -> int:
        query = select(func.coalesce(func.sum(ArtifactRow.size), 0)).where(
            ArtifactRow.owner == owner
        )
        return int((await self.session.execute(query)).scalar_one())

    async def timings(self, since: datetime) -> Sequence[Any]:
        """(workflow, created_at, started_at, finished_at) of jobs started since."""
        query = select(
            JobRow.workflow, JobRow.created_at, JobRow.started_at, JobRow.finished_at
        ).where(JobRow.started_at.is_not(None), JobRow.created_at >= since)
        return (await self.session.execute(query)).all()

    async def attempts_since(self, since: datetime) -> list[AttemptRow]:
        query = (
            select(AttemptRow)
            .where((AttemptRow.finished_at.is_(None)) | (AttemptRow.finished_at >= since))
            .order_by(AttemptRow.started_at)
        )
        return list((await self.session.execute(query)).scalars())

    async def last_errors(self) -> dict[str, tuple[datetime, dict[str, Any]]]:
        """Per backend, its most recent failed or lost attempt: (when, error)."""
        newest = (
            select(AttemptRow.backend, func.max(AttemptRow.finished_at).label("at"))
            .where(AttemptRow.error.is_not(None), AttemptRow.finished_at.is_not(None))
            .group_by(AttemptRow.backend)
            .subquery()
        )
        query = select(AttemptRow).join(
            newest,
            (newest.c.backend == AttemptRow.backend) & (newest.c.at == AttemptRow.finished_at),
        )
        found: dict[str, tuple[datetime, dict[str, Any]]] = {}
        for row in (await self.session.execute(query)).scalars():
            if row.finished_at is not None and row.error is not None:
                found[row.backend] = (row.finished_at, row.error)
        return found

    async def owner_counts(self) -> dict[str | None, dict[str, int]]:
        query = select(JobRow.owner, JobRow.status, func.count()).group_by(
            JobRow.owner, JobRow.status
        )
        found: dict[str | None, dict[str, int]] = {}
        for owner, status, count in (await self.session.execute(query)).all():
            found.setdefault(owner, {s.value: 0 for s in JobStatus})[status] = int(count)
        return found
