"""The reads that operators' views need: metrics, the health view, prompt-id lookups."""

from __future__ import annotations

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

    async def job(self, job_id: str) -> JobRow | None:
        return await self.session.get(JobRow, job_id)
