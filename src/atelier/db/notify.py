"""Live events across processes: PostgreSQL LISTEN/NOTIFY wakes, the events table tells.

Every replica and worker runs one ``PostgresEventBus``. A trigger (migration
``0004_cluster``) notifies ``atelier_events`` when events are inserted; the bus
then reads the table after its watermark and hands each event, in id order, to its
in-process subscribers (SSE, WebSocket, webhooks, waits). Notifications are only a
wake-up: a dropped LISTEN connection, a PostgreSQL restart or a missed notification
costs at most the poll interval, never an event.

Ids are not commit-ordered on PostgreSQL: transaction A takes id 7, B takes id 8, B
commits first. A reader that delivered 8 and moved its cursor past 7 would never see 7.
The bus therefore delivers only a gap-free run of ids: at a missing id it waits until
every transaction that was writing to job_events when the gap was seen has ended (see
``_gap_closed``); an id still missing then was rolled back (a sequence value is never
reused). ``grace`` only caps the wait for a writer that hangs. ``horizon()`` is the
last id of that run: a stream that replays the table up to the horizon and then follows
live events misses nothing and sees nothing twice. The cost is latency only while two
writers race (milliseconds).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.database import Database
from atelier.db.repositories import EventRepository
from atelier.db.tables import EventRow
from atelier.events import ChangeListener, JobEvent, LocalEventBus, Subscription

log = logging.getLogger("atelier.events")

CHANNEL = "atelier_events"
# Events that change which jobs are queued (every queued job's position may move).
QUEUE_EVENTS = frozenset({"queued", "running", "requeued", "cancelled"})
PAGE = 1000
START_WINDOW = 200  # newest ids looked at for a gap when the bus starts
KEEPALIVE = 10.0  # seconds between checks that the LISTEN connection still answers
GAP_RECHECK = 0.02  # seconds between looks at a missing id while it may still commit
# Reads of the table start at most this often: under load every process is notified many
# times a second (progress from every worker), and one read per notification cost each
# of them a fifth of a core (py-spy, docs/PERFORMANCE.md); a batch costs one read.
READ_EVERY = 0.05


def contiguous_floor(ids: list[int]) -> int:
    """The id just below the first gap of an ascending run (or its last id)."""
    if not ids:
        return 0
    floor = ids[0]
    for event_id in ids[1:]:
        if event_id != floor + 1:
            break
        floor = event_id
    return floor


async def recent_event_ids(session: AsyncSession, limit: int) -> list[int]:
    query = select(EventRow.id).order_by(EventRow.id.desc()).limit(limit)
    return sorted(int(i) for i in (await session.execute(query)).scalars())


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """postgresql+asyncpg://... -> postgresql://... for a plain asyncpg connection."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresEventBus:
    def __init__(
        self,
        database: Database,
        *,
        grace: float = 5.0,
        poll_interval: float = 1.0,
        read_every: float = READ_EVERY,
    ) -> None:
        self.database = database
        self.grace = grace
        self.poll_interval = poll_interval
        self.read_every = read_every
        self._fanout = LocalEventBus()
        self._watermark = 0
        # (watermark, writers holding job_events then, first seen, those writers ended)
        self._gap: tuple[int, frozenset[str], float, bool] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # set while a LISTEN connection is up
        self._closed = False

    def subscribe(
        self, job_id: str | None = None, *, kind: str = "internal"
    ) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._fanout.subscribe(job_id, kind=kind)

    def subscribers_by_kind(self) -> collections.Counter[str]:
        return self._fanout.subscribers_by_kind()

    def publish(self, event: JobEvent) -> None:
        # Our own commit: read it back from the table now, in order with everyone else's.
        self._wake.set()

    def horizon(self) -> int | None:
        return self._watermark

    @property
    def subscriber_count(self) -> int:
        return self._fanout.subscriber_count

    @property
    def published(self) -> collections.Counter[str]:
        return self._fanout.published

    def on_jobs_changed(self, listener: ChangeListener) -> None:
        self._fanout.on_jobs_changed(listener)

    def jobs_changed(self, job_ids: Collection[str], *, queue: bool) -> None:
        self._fanout.jobs_changed(job_ids, queue=queue)

    # This process's own open transactions; other replicas' late commits are what the
    # horizon (the gap-free watermark) holds back.
    def begin_write(self) -> int:
        return self._fanout.begin_write()

    def end_write(self, token: int) -> None:
        self._fanout.end_write(token)

    def observe(self, event_id: int) -> None:
        self._fanout.observe(event_id)

    def settled_id(self) -> int | None:
        local = self._fanout.settled_id()
        return self._watermark if local is None else min(local, self._watermark)

    async def start(self) -> None:
        # Start below the first gap among the newest ids: a transaction that took an id
        # there may still commit, and the normal gap rule (wait up to ``grace``) decides.
        async with self.database.transaction() as session:
            recent = await recent_event_ids(session, START_WINDOW)
        self._watermark = contiguous_floor(recent)
        self._tasks = [
            asyncio.create_task(self._listen(), name="events-listen"),
            asyncio.create_task(self._follow(), name="events-follow"),
        ]

    async def close(self) -> None:
        # The flag as well as the cancel: on Python 3.11 a wait_for that finishes just as
        # it is cancelled swallows the cancellation, and the loop would go on.
        self._closed = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _listen(self) -> None:
        """Keep one LISTEN connection; on any loss, reconnect and resync."""
        dsn = asyncpg_dsn(self.database.url)
        delay = 0.1
        while not self._closed:
            lost = asyncio.Event()
            try:
                async with _listening(dsn, self._wake, lost) as connection:
                    self.listening.set()
                    delay = 0.1
                    self._wake.set()  # whatever happened while we were away
                    while not lost.is_set() and not self._closed:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lost.wait(), KEEPALIVE)
                        if not lost.is_set():  # a half-open TCP connection says nothing
                            await asyncio.wait_for(connection.execute("SELECT 1"), KEEPALIVE)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("event LISTEN connection failed (%s); retrying", exc)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            waiting = False
            read_at = loop.time()
            try:
                waiting = await self.read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the poll tries again
                log.warning("reading job events failed (%s); retrying", type(exc).__name__)
            timeout = GAP_RECHECK if waiting else self.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            # Notifications that arrive meanwhile join this batch.
            await asyncio.sleep(max(0.0, read_at + self.read_every - loop.time()))
            self._wake.clear()

    async def read_once(self) -> bool:
        """Deliver the gap-free run after the watermark; True while waiting at a gap."""
        while True:
            async with self.database.transaction() as session:
                rows = await EventRepository(session).after(self._watermark, limit=PAGE)
                for row in rows:
                    if row.id != self._watermark + 1 and not await self._gap_closed(session):
                        return True
                    self._gap = None
                    self._watermark = row.id
                    # Another replica's change too: read models drop what they hold of it.
                    self._fanout.jobs_changed((row.job_id,), queue=row.type in QUEUE_EVENTS)
                    self._fanout.publish(
                        JobEvent(row.id, row.job_id, row.type, row.data, row.created_at)
                    )
            if len(rows) < PAGE:
                return False

    async def _gap_closed(self, session: AsyncSession) -> bool:
        """Whether the ids missing after the watermark will never commit.

        An INSERT into job_events holds a RowExclusiveLock on the table from before it
        draws its id until its transaction ends. So the writers of the missing ids are
        among the lock holders at the moment the gap is first seen; once none of those
        holds it any more, each has committed (its row would have been read) or rolled
        back. No clocks involved. ``grace`` only caps the wait for a writer that hangs.
        """
        if self._gap is None or self._gap[0] != self._watermark:
            self._gap = (self._watermark, await event_writers(session), time.monotonic(), False)
            return False
        _, writers, since, ended = self._gap
        if ended:
            # The writers had ended before this read began, and it still misses the
            # ids: they were rolled back.
            log.info("event ids after %d were rolled back; moving on", self._watermark)
            return True
        if writers & await event_writers(session):
            if time.monotonic() - since < self.grace:
                return False
            log.warning("event writer still open after %.0f s; moving on", self.grace)
            return True
        # They ended, maybe by committing just after this read's snapshot: read again.
        self._gap = (self._watermark, writers, since, True)
        return False


async def event_writers(session: AsyncSession) -> frozenset[str]:
    """The other transactions that hold a write lock on job_events right now."""
    result = await session.execute(
        text(
            "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
            "AND relation = 'job_events'::regclass AND mode = 'RowExclusiveLock' "
            "AND granted AND pid <> pg_backend_pid()"
        )
    )
    return frozenset(str(v) for v in result.scalars())


@asynccontextmanager
async def _listening(
    dsn: str, wake: asyncio.Event, lost: asyncio.Event
) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(CHANNEL, lambda *_args: wake.set())
        yield connection
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 2)
