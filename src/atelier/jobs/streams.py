"""Job events to follow: replayed from the events table, then live from the bus.

A stream first replays persisted events after the client's last id, then follows live
ones. It subscribes before replaying, so nothing falls in the gap; ids already sent are
skipped. A job's stream ends after its terminal event.

On PostgreSQL an event can commit after one with a higher id; while one may still do so,
``cursor`` stays below it (``EventBus.settled_id``), so a client that resumes from the
cursor misses nothing (and may see an event again: the event's own id tells).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from atelier.db.studio import RunRepository
from atelier.dispatch.ledger import JobLedger
from atelier.events import EventBus, JobEvent
from atelier.job_state import TERMINAL

REPLAY_PAGE = 500
_OWNER_CACHE = 10_000


class EventStreams:
    def __init__(self, ledger: JobLedger, bus: EventBus) -> None:
        self.ledger = ledger
        self.bus = bus
        self._owners: dict[str, str | None] = {}  # job or run id -> owner (never changes)

    async def follow(
        self, job_id: str | None, after: int, *, owner: str | None = None
    ) -> AsyncIterator[JobEvent]:
        """Events of one job (or run) or of all; with ``owner``, only that owner's."""
        async for event in self._follow(job_id, after):
            if owner is None or job_id is not None or await self._owner_of(event) == owner:
                yield event

    def cursor(self, cursor: int, delivered: int) -> int:
        """Where a client that has every event up to ``delivered`` may resume from."""
        settled = self.bus.settled_id()
        return max(cursor, delivered if settled is None else min(delivered, settled))

    async def last_id(self) -> int:
        """The newest event's id: a stream from here shows only what happens next."""
        async with self.ledger.unit() as unit:
            return await unit.events.last_id()

    async def job_visible(self, job_id: str, *, owner: str | None) -> bool:
        async with self.ledger.unit() as unit:
            return await unit.jobs.get(job_id, owner=owner) is not None

    async def _owner_of(self, event: JobEvent) -> str | None:
        owners = self._owners
        if event.job_id not in owners:
            if len(owners) > _OWNER_CACHE:
                owners.clear()
            async with self.ledger.unit() as unit:
                job = await unit.jobs.get(event.job_id)
                if job is None:  # a pipeline run's events carry the run's id
                    run_owner = (await RunRepository(unit.session).owner_of(event.job_id))[1]
                    owners[event.job_id] = run_owner
                    return run_owner
            owners[event.job_id] = job.owner
        return owners[event.job_id]

    async def _follow(self, job_id: str | None, after: int) -> AsyncIterator[JobEvent]:
        bus = self.bus
        sent: set[int] = set()
        last = after
        async with bus.subscribe(job_id, kind="stream") as subscription:
            # Replay only up to the bus's horizon (PostgreSQL: the last id with no gap
            # below it that could still commit); live events bring the rest, in order.
            horizon = bus.horizon()

            async def replay() -> AsyncIterator[JobEvent]:
                nonlocal last
                while True:
                    async with self.ledger.unit() as unit:
                        rows = await unit.events.after(
                            last, job_id=job_id, limit=REPLAY_PAGE, until=horizon
                        )
                    for row in rows:
                        bus.observe(row.id)
                        last = max(last, row.id)
                        if row.id not in sent:
                            sent.add(row.id)
                            yield JobEvent(row.id, row.job_id, row.type, row.data, row.created_at)
                    if len(rows) < REPLAY_PAGE:
                        return

            async for event in replay():
                yield event
                if job_id is not None and event.type in TERMINAL:
                    return
            while True:
                if subscription.lagged:
                    subscription.lagged = False
                    while not subscription.queue.empty():
                        subscription.queue.get_nowait()
                    horizon = bus.horizon()
                    async for event in replay():
                        yield event
                        if job_id is not None and event.type in TERMINAL:
                            return
                    continue
                event = await subscription.queue.get()
                if event.id in sent or event.id <= after:
                    continue
                sent.add(event.id)
                last = max(last, event.id)
                yield event
                if job_id is not None and event.type in TERMINAL:
                    return
