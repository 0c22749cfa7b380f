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
  process (a second replica, a worker) can look (a document read often is read again
  in the background during its last quarter, so its readers do not wait). Each entry
  lives between three quarters of ``ttl`` and all of it, drawn at random: documents
  read together (a dashboard's first poll) are then read again at different times,
  not in one burst that would hold up every request behind it;
- least recently used first once ``size`` entries are held.

A read that raced a change is not stored: a change of the job withdraws the load under
way, so a document read before a commit never outlives it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from atelier.errors import JobNotFound


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


@dataclass(slots=True)
class _Batch:
    """Jobs missed in one turn of the event loop, read in one load."""

    ids: list[str] = field(default_factory=list)
    task: asyncio.Future[Mapping[str, StatusDocument]] = field(init=False)


@dataclass(frozen=True, slots=True)
class _Flight:
    task: asyncio.Future[StatusDocument]
    base_url: str
    queue_generation: int


class JobReadModel:
    def __init__(
        self,
        *,
        size: int,
        ttl: float,
        spread: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.ttl = ttl
        self.spread = spread  # an entry lives between (1 - spread) * ttl and ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, _Flight] = {}
        self._batches: dict[str, _Batch] = {}  # by base URL: a document's links use it
        self._queue_generation = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0 and self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    async def read(
        self,
        job_id: str,
        base_url: str,
        load: Callable[[list[str]], Awaitable[Mapping[str, StatusDocument]]],
    ) -> StatusDocument:
        """The job's document from memory, or from the tables: ``load(ids)`` reads the
        documents of several jobs in one transaction (a job it does not return does not
        exist). Readers who miss the same job together share one load, and the jobs
        missed in the same turn of the event loop are read together: a dashboard's
        first poll, or a change of the queue, costs one transaction, not one a job."""
        entry = self._entries.get(job_id)
        if entry is not None and self._fresh(entry, base_url):
            self._entries.move_to_end(job_id)
            self.hits += 1
            if entry.expires - self._clock() < self.ttl / 4 and job_id not in self._loading:
                # Read it again in the background before it expires, so that a job
                # polled all the time never makes its readers wait for the tables.
                self._start_load(job_id, base_url, load)
            return entry.document
        self.misses += 1
        if not self.enabled:
            return await self._from_batch(self._batch(base_url, load, job_id), job_id)
        flight = self._loading.get(job_id)
        if flight is None or flight.base_url != base_url:
            flight = self._start_load(job_id, base_url, load)
        # Shielded: a reader that goes away does not cancel the others' load.
        return await asyncio.shield(flight.task)

    def _start_load(
        self,
        job_id: str,
        base_url: str,
        load: Callable[[list[str]], Awaitable[Mapping[str, StatusDocument]]],
    ) -> _Flight:
        task = asyncio.ensure_future(self._from_batch(self._batch(base_url, load, job_id), job_id))
        flight = _Flight(task, base_url, self._queue_generation)
        self._loading[job_id] = flight
        flight.task.add_done_callback(lambda _: self._landed(job_id, flight))
        return flight

    def _batch(
        self,
        base_url: str,
        load: Callable[[list[str]], Awaitable[Mapping[str, StatusDocument]]],
        job_id: str,
    ) -> _Batch:
        """The load this turn's misses join (it starts on the loop's next turn), with
        ``job_id`` in it."""
        batch = self._batches.get(base_url)
        if batch is None or batch.task.done():  # done before it ran: cancelled at a stop
            batch = self._batches[base_url] = _Batch()

            async def run(batch: _Batch = batch) -> Mapping[str, StatusDocument]:
                if self._batches.get(base_url) is batch:
                    del self._batches[base_url]  # a later miss starts the next batch
                return await load(batch.ids)

            batch.task = asyncio.ensure_future(run())
        batch.ids.append(job_id)
        return batch

    @staticmethod
    async def _from_batch(batch: _Batch, job_id: str) -> StatusDocument:
        documents = await asyncio.shield(batch.task)
        document = documents.get(job_id)
        if document is None:
            raise JobNotFound(f"no job {job_id!r}")
        return document

    def forget(self, job_ids: Collection[str], queue_changed: bool) -> None:
        """Drop what is held of these jobs (an ``EventBus.on_jobs_changed`` listener).
        A load under way is withdrawn too: it may have read the job before the change,
        so it is not stored, and later readers start a new one."""
        for job_id in job_ids:
            self._entries.pop(job_id, None)
            self._loading.pop(job_id, None)
        if queue_changed:
            self._queue_generation += 1

    def _landed(self, job_id: str, flight: _Flight) -> None:
        if self._loading.get(job_id) is not flight:
            return  # withdrawn by a change, or replaced
        del self._loading[job_id]
        task = flight.task
        if task.cancelled() or task.exception() is not None:
            return
        document = task.result()
        if document.queued and flight.queue_generation != self._queue_generation:
            return
        lifetime = self.ttl * random.uniform(1 - self.spread, 1.0)  # spread, see the module's notes
        entry = _Entry(document, flight.base_url, flight.queue_generation, self._clock() + lifetime)
        self._entries[job_id] = entry
        self._entries.move_to_end(job_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _fresh(self, entry: _Entry, base_url: str) -> bool:
        return (
            entry.base_url == base_url
            and entry.expires > self._clock()
            and (not entry.document.queued or entry.queue_generation == self._queue_generation)
        )
