"""Queries for webhook subscriptions, their secrets, the delivery ledger and its cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.tables import (
    EventRow,
    JobRow,
    ServiceStateRow,
    WebhookDeliveryRow,
    WebhookRow,
    WebhookSecretRow,
)


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: WebhookRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def get(self, webhook_id: str, *, owner: str | None = None) -> WebhookRow | None:
        row = await self.session.get(WebhookRow, webhook_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row

    async def standing(self, *, owner: str | None) -> list[WebhookRow]:
        query = select(WebhookRow).where(WebhookRow.job_id.is_(None))
        if owner is not None:
            query = query.where(WebhookRow.owner == owner)
        query = query.order_by(WebhookRow.created_at, WebhookRow.id)
        return list((await self.session.execute(query)).scalars())

    async def count_standing(self, owner: str | None) -> int:
        query = select(func.count()).where(WebhookRow.job_id.is_(None))
        query = query.where(
            WebhookRow.owner.is_(None) if owner is None else WebhookRow.owner == owner
        )
        return int((await self.session.execute(query)).scalar_one())

    async def delete(self, webhook_id: str) -> None:
        await self.session.execute(delete(WebhookRow).where(WebhookRow.id == webhook_id))

    async def matching(self, job_id: str, job_owner: str | None) -> list[WebhookRow]:
        """The job's own webhooks, its owner's subscriptions, and owner-less ones (made
        in open mode), which hear every job."""
        standing = and_(
            WebhookRow.job_id.is_(None),
            or_(WebhookRow.owner.is_(None), WebhookRow.owner == job_owner),
        )
        query = select(WebhookRow).where(or_(WebhookRow.job_id == job_id, standing))
        return list((await self.session.execute(query)).scalars())

    async def jobs_with_hooks(self, job_ids: set[str]) -> set[str]:
        """Which of these jobs any webhook hears: their own, or a standing one."""
        if not job_ids:
            return set()
        owners = select(WebhookRow.owner).where(WebhookRow.job_id.is_(None)).distinct()
        standing = set((await self.session.execute(owners)).scalars())
        if None in standing:
            return set(job_ids)  # an owner-less subscription hears every job
        heard = set(
            (
                await self.session.execute(
                    select(WebhookRow.job_id).where(WebhookRow.job_id.in_(job_ids))
                )
            ).scalars()
        )
        if standing:
            query = select(JobRow.id).where(JobRow.id.in_(job_ids), JobRow.owner.in_(standing))
            heard |= set((await self.session.execute(query)).scalars())
        return {job_id for job_id in heard if job_id is not None}

    async def delete_for_job(self, job_id: str) -> None:
        await self.session.execute(delete(WebhookRow).where(WebhookRow.job_id == job_id))

    async def owner_secret(self, owner: str) -> WebhookSecretRow | None:
        return await self.session.get(WebhookSecretRow, owner)

    async def add_owner_secret(self, row: WebhookSecretRow) -> None:
        self.session.add(row)
        await self.session.flush()


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_once(self, row: WebhookDeliveryRow) -> bool:
        """Insert unless this webhook already has a delivery of this event."""
        exists = select(WebhookDeliveryRow.id).where(
            WebhookDeliveryRow.webhook_id == row.webhook_id,
            WebhookDeliveryRow.event_id == row.event_id,
        )
        if (await self.session.execute(exists)).first() is not None:
            return False
        self.session.add(row)
        await self.session.flush()
        return True

    async def get(self, delivery_id: str, *, owner: str | None = None) -> WebhookDeliveryRow | None:
        row = await self.session.get(WebhookDeliveryRow, delivery_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row

    async def due(self, now: datetime, *, limit: int, skip: set[str]) -> list[WebhookDeliveryRow]:
        query = (
            select(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.status == "pending",
                WebhookDeliveryRow.next_attempt_at <= now,
            )
            .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.event_id)
            .limit(limit + len(skip))
        )
        rows = [r for r in (await self.session.execute(query)).scalars() if r.id not in skip]
        return rows[:limit]

    async def next_due(self) -> datetime | None:
        query = select(func.min(WebhookDeliveryRow.next_attempt_at)).where(
            WebhookDeliveryRow.status == "pending"
        )
        value: datetime | None = (await self.session.execute(query)).scalar()
        return value

    async def find(
        self,
        *,
        owner: str | None,
        job_id: str | None,
        status: str | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[WebhookDeliveryRow]:
        query = select(WebhookDeliveryRow)
        if owner is not None:
            query = query.where(WebhookDeliveryRow.owner == owner)
        if job_id is not None:
            query = query.where(WebhookDeliveryRow.job_id == job_id)
        if status is not None:
            query = query.where(WebhookDeliveryRow.status == status)
        if before is not None:
            created, delivery_id = before
            query = query.where(
                or_(
                    WebhookDeliveryRow.created_at < created,
                    and_(
                        WebhookDeliveryRow.created_at == created,
                        WebhookDeliveryRow.id < delivery_id,
                    ),
                )
            )
        query = query.order_by(
            WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id.desc()
        ).limit(limit)
        return list((await self.session.execute(query)).scalars())


class StateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, name: str) -> int | None:
        row = await self.session.get(ServiceStateRow, name)
        return None if row is None else row.value

    async def set(self, name: str, value: int) -> None:
        row = await self.session.get(ServiceStateRow, name)
        if row is None:
            self.session.add(ServiceStateRow(name=name, value=value))
        else:
            row.value = value
        await self.session.flush()


class EventFeed:
    """job_events as the webhook consumer reads them: new ones, and late-committed ones
    (PostgreSQL hands out ids before commit, so a lower id can appear after a higher)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def after(self, after_id: int, *, limit: int) -> list[EventRow]:
        query = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def window(self, low: int, high: int) -> list[tuple[int, datetime]]:
        query = (
            select(EventRow.id, EventRow.created_at)
            .where(EventRow.id > low, EventRow.id <= high)
            .order_by(EventRow.id)
        )
        return [(int(i), at) for i, at in (await self.session.execute(query)).all()]

    async def by_ids(self, ids: list[int]) -> list[EventRow]:
        query = select(EventRow).where(EventRow.id.in_(ids)).order_by(EventRow.id)
        return list((await self.session.execute(query)).scalars())
