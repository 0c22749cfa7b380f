"""Job events: the in-process broadcast that feeds SSE, WebSocket and webhook consumers.

Events are persisted first (their id is the row id in ``job_events``) and published
after the transaction commits, so a subscriber never sees an event that could still roll
back. A subscriber that falls behind is marked ``lagged`` instead of blocking the
publisher; it then resyncs from the table, which holds every event.

On PostgreSQL two transactions can commit their events out of id order (10 is written
first, 11 commits first). So a stream must not tell a client "you have everything up to
11" while 10 can still commit: the bus knows the transactions writing events in this
process, and ``settled_id()`` is the id up to which nothing more can appear. A writer
registers before its INSERT with the highest id known committed then; every id it gets
is above that, so the smallest such floor bounds every id still in flight.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

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

# Event ids are 64-bit row ids (SQLite INTEGER, PostgreSQL BIGINT).
MAX_EVENT_ID = 2**63 - 1


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


# Told, after a transaction commits, which jobs it changed and whether the queue changed.
ChangeListener = Callable[[Collection[str], bool], None]


class EventBus(Protocol):
    """Where committed events reach the SSE, WebSocket, webhook and wait consumers.

    ``LocalEventBus`` broadcasts in-process (single node); ``PostgresEventBus``
    (atelier.db.notify) reads the events table when PostgreSQL NOTIFY says it grew, so
    every replica sees every event.
    """

    def subscribe(
        self, job_id: str | None = None, *, kind: str = "internal"
    ) -> AbstractAsyncContextManager[Subscription]: ...

    def publish(self, event: JobEvent) -> None:
        """Called after the event's transaction committed."""
        ...

    def horizon(self) -> int | None:
        """Every event with an id up to this was delivered (or will never exist), so a
        replay from the table up to it plus live events after it miss nothing. None:
        live events come in commit order anyway (single node), replay everything."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def subscriber_count(self) -> int: ...

    @property
    def published(self) -> collections.Counter[str]:
        """Events delivered to this process's consumers, by type (for /metrics)."""
        ...

    def subscribers_by_kind(self) -> collections.Counter[str]: ...

    def on_jobs_changed(self, listener: ChangeListener) -> None:
        """Call ``listener(job_ids, queue_changed)`` after every committed change to jobs
        this process made, before that change's events are published."""
        ...

    def jobs_changed(self, job_ids: Collection[str], *, queue: bool) -> None: ...

    def begin_write(self) -> int:
        """Before a transaction inserts its first event; a token for ``end_write``."""
        ...

    def end_write(self, token: int) -> None: ...

    def observe(self, event_id: int) -> None:
        """An event id seen committed (published, or read back from the table)."""
        ...

    def settled_id(self) -> int | None:
        """Ids up to this one are final (None: no transaction is writing events)."""
        ...


class LocalEventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.published: collections.Counter[str] = collections.Counter()  # by type, for /metrics
        self._change_listeners: list[ChangeListener] = []
        # Commit order within this process: the SSE cursor never passes an id that an
        # open transaction may still commit below (api/streaming.py).
        self._committed_high = 0  # the highest event id known to be committed
        self._writers: dict[int, int] = {}  # open event-writing transaction -> its floor
        self._tokens = itertools.count()

    def on_jobs_changed(self, listener: ChangeListener) -> None:
        """Call ``listener(job_ids, queue_changed)`` after every committed change to jobs
        (rows, attempts, outputs, events), before that change's events are published:
        in-memory read models forget what they held of those jobs."""
        self._change_listeners.append(listener)

    def jobs_changed(self, job_ids: Collection[str], *, queue: bool) -> None:
        for listener in self._change_listeners:
            listener(job_ids, queue)

    def begin_write(self) -> int:
        """Call before a transaction inserts its first event; returns a token for
        ``end_write``, to be called once its events are published (or rolled back)."""
        token = next(self._tokens)
        self._writers[token] = self._committed_high
        return token

    def end_write(self, token: int) -> None:
        self._writers.pop(token, None)

    def observe(self, event_id: int) -> None:
        """An event id seen committed (published, or read back from the table)."""
        self._committed_high = max(self._committed_high, event_id)

    def settled_id(self) -> int | None:
        """Ids up to this one are final: no event at or below it can still commit.
        None when no transaction is writing events (everything is settled)."""
        return min(self._writers.values(), default=None)

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
        self.observe(event.id)
        for subscription in self._subscriptions:
            if subscription.job_id not in (None, event.job_id):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.lagged = True

    def horizon(self) -> int | None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def subscribers_by_kind(self) -> collections.Counter[str]:
        return collections.Counter(s.kind for s in self._subscriptions)
