"""The reads that operators' views need: metrics, the health view, prompt-id lookups."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.tables import AttemptRow, JobRow, WebhookDeliveryRow
from atelier.job_state import JobStatus


class OperationsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def queued_by_priority(self) -> dict[int, int]:
        query = (
            select(JobRow.priority, func.count())
            .where(JobRow.status == JobStatus.QUEUED)
            .group_by(JobRow.priority)
        )
        return {int(p): int(n) for p, n in (await self.session.execute(query)).all()}

    async def deliveries_by_status(self) -> dict[str, int]:
        """Webhook deliveries: pending (the backlog), delivered, failed (gave up)."""
        query = select(WebhookDeliveryRow.status, func.count()).group_by(WebhookDeliveryRow.status)
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        for status, count in (await self.session.execute(query)).all():
            counts[str(status)] = int(count)
        return counts

    async def job_of_attempt(self, attempt_id: str) -> str | None:
        """The job of this attempt id, which is a ComfyUI prompt_id (any attempt, not just
        the last)."""
        query = select(AttemptRow.job_id).where(AttemptRow.id == attempt_id)
        job_id: str | None = (await self.session.execute(query)).scalar()
        return job_id

    async def timings(self, job_ids: Collection[str]) -> dict[str, JobTimings]:
        """What the metrics observe of finished jobs: only these columns (the whole row
        would parse its graph, the largest column, once for every job that ends)."""
        if not job_ids:
            return {}
        query = select(
            JobRow.id, JobRow.workflow, JobRow.created_at, JobRow.started_at, JobRow.finished_at
        ).where(JobRow.id.in_(set(job_ids)))
        return {row[0]: JobTimings(*row[1:]) for row in (await self.session.execute(query)).all()}


@dataclass(frozen=True, slots=True)
class JobTimings:
    workflow: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
