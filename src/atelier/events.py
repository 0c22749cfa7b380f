"""Job events: the in-process broadcast that feeds SSE, WebSocket and webhook consumers.

Events are persisted first (their id is the row id in ``job_events``) and published
after the transaction commits, so a subscriber never sees an event that could still roll
back. A subscriber that falls behind is marked ``lagged`` instead of blocking the
publisher; it then resyncs from the table, which holds every event.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Event types. The status ones double as webhook filters.
QUEUED = "queued"
RUNNING = "running"
PROGRESS = "progress"
OUTPUT = "output"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
CANCEL_REQUESTED = "cancel_requested"
REQUEUED = "requeued"


@dataclass(frozen=True)
class JobEvent:
    id: int
    job_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "type": self.type,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(eq=False)
class Subscription:
    job_id: str | None
    kind: str = "internal"  # stream (SSE, WebSocket), wait (Prefer: wait), internal
    queue: asyncio.Queue[JobEvent] = field(default_factory=lambda: asyncio.Queue(maxsize=2048))
    lagged: bool = False


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.published: collections.Counter[str] = collections.Counter()  # by type, for /metrics

    @asynccontextmanager
    async def subscribe(
        self, job_id: str | None = None, *, kind: str = "internal"
    ) -> AsyncIterator[Subscription]:
        """Events of one job, or of all jobs when ``job_id`` is None; ``kind`` is who
        listens, for /metrics."""
        subscription = Subscription(job_id, kind=kind)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def publish(self, event: JobEvent) -> None:
        self.published[event.type] += 1
        for subscription in self._subscriptions:
            if subscription.job_id not in (None, event.job_id):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.lagged = True

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def subscribers_by_kind(self) -> collections.Counter[str]:
        return collections.Counter(s.kind for s in self._subscriptions)
