"""A unit of work: one transaction, its repositories, and the events it emits.

Events are written in the transaction and published on the bus only after it commits;
so is the list of jobs it changed, for read models kept in memory (jobs/readmodel.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.database import Database
from atelier.db.repositories import (
    ArtifactRepository,
    EventRepository,
    JobChanges,
    JobRepository,
)
from atelier.events import EventBus, JobEvent


class UnitOfWork:
    def __init__(self, session: AsyncSession, bus: EventBus | None = None) -> None:
        self.session = session
        self.bus = bus
        self.write_token: int | None = None
        self.changes = JobChanges()
        self.jobs = JobRepository(session, self.changes)
        self.events = EventRepository(session, self.changes)
        self.artifacts = ArtifactRepository(session, self.changes)
        self.emitted: list[JobEvent] = []

    async def emit(self, job_id: str, type: str, data: dict[str, Any]) -> JobEvent:
        if self.bus is not None and self.write_token is None:
            self.write_token = self.bus.begin_write()  # before the INSERT takes an id
        row = await self.events.add(job_id, type, data)
        event = JobEvent(id=row.id, job_id=job_id, type=type, data=data, created_at=row.created_at)
        self.emitted.append(event)
        return event


@asynccontextmanager
async def unit_of_work(database: Database, bus: EventBus) -> AsyncIterator[UnitOfWork]:
    unit: UnitOfWork | None = None
    try:
        async with database.transaction() as session:
            unit = UnitOfWork(session, bus)
            yield unit
        if unit.changes.jobs or unit.changes.queue:
            bus.jobs_changed(unit.changes.jobs, queue=unit.changes.queue)
        for event in unit.emitted:
            bus.publish(event)
    finally:
        if unit is not None and unit.write_token is not None:
            bus.end_write(unit.write_token)
