"""Recently read jobs' status documents, held in memory so a polled job costs no query.

``GET /api/v1/jobs/{id}`` is what dashboards and SDKs poll, many times a second. Each
answer used to cost a transaction and four queries (job, attempts, outputs, queue
position). This read model keeps the rendered JSON of recently read jobs; the tables stay
the truth, and a miss reads them.

An entry is dropped:

- at once when a transaction of this process changes the job (its row, attempts,
  outputs or events; see ``JobChanges``), after the commit and before the change's
  events are published, so a client that saw an event never reads an older document;
- for a queued job, when the queue changes (a job entered or left it): its position
  is part of the document;
- after ``ttl`` seconds in any case, which bounds how stale a change made by another
  process (a second replica, a worker) can look;
- least recently used first once ``size`` entries are held.

A read that raced a change is not stored: each load holds a token that a change of its
job withdraws, so a document read before a commit never outlives it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusDocument:
    """A job's rendered status (JSON) and what decides whether it may be served."""

    body: bytes
    owner: str | None
    queued: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    document: StatusDocument
    base_url: str
    queue_generation: int
    expires: float


class JobReadModel:
    def __init__(
        self, *, size: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, object] = {}
        self._queue_generation = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0 and self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    async def read(
        self, job_id: str, base_url: str, load: Callable[[], Awaitable[StatusDocument]]
    ) -> StatusDocument:
        """The job's document from memory, or from ``load()`` (which reads the tables,
        and raises when there is no such job)."""
        entry = self._entries.get(job_id)
        if entry is not None and self._fresh(entry, base_url):
            self._entries.move_to_end(job_id)
            self.hits += 1
            return entry.document
        self.misses += 1
        if not self.enabled:
            return await load()
        token = object()
        self._loading[job_id] = token
        generation = self._queue_generation
        try:
            document = await load()
        finally:
            current = self._loading.get(job_id)
            if current is token:
                del self._loading[job_id]
        if current is token and not (document.queued and generation != self._queue_generation):
            self._store(job_id, _Entry(document, base_url, generation, self._clock() + self.ttl))
        return document

    def forget(self, job_ids: Collection[str], queue_changed: bool) -> None:
        """Drop what is held of these jobs (an ``EventBus.on_jobs_changed`` listener)."""
        for job_id in job_ids:
            self._entries.pop(job_id, None)
            self._loading.pop(job_id, None)
        if queue_changed:
            self._queue_generation += 1

    def _fresh(self, entry: _Entry, base_url: str) -> bool:
        return (
            entry.base_url == base_url
            and entry.expires > self._clock()
            and (not entry.document.queued or entry.queue_generation == self._queue_generation)
        )

    def _store(self, job_id: str, entry: _Entry) -> None:
        self._entries[job_id] = entry
        self._entries.move_to_end(job_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
