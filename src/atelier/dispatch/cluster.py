"""Dispatch in the cluster shape: one elected scheduler, per-worker procrastinate queues.

Every API replica and every worker runs a ``ClusterScheduler``; the one that holds the
PostgreSQL advisory lock ``SCHEDULER_LOCK`` (on a connection of its own, so the lock
goes when the process or its connection dies) schedules, the others wait to take over.
The leader sees every live worker's free slots, capabilities, VRAM and loaded checkpoint
(the ``workers`` table, kept by heartbeats), so ``policy.assign`` decides exactly as on
a single node: capability, priority, fair share across the whole cluster, idle before
busy, model affinity with its starvation guard, age. Each pair it picks is claimed in
the jobs table (``queued -> running`` on that worker, a new attempt id) and deferred as
a procrastinate task on the worker's own queue ``atelier-worker-<name>``.

Leases: a worker that stops heartbeating for ``worker_lease_timeout`` has lost its
jobs; the leader requeues them (attempt + 1 at the next claim). A task that arrives
for an attempt that moved on is dropped by the worker; a worker that restarts within
its lease re-attaches to its running prompts by prompt id (docs/CLUSTER.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import asyncpg
import procrastinate

from atelier import events
from atelier.comfyui import capabilities
from atelier.db.notify import READ_EVERY, PostgresEventBus, asyncpg_dsn
from atelier.db.repositories import QueuedJob
from atelier.db.security import KeyRepository
from atelier.db.tables import utcnow
from atelier.db.workers import (
    SCHEDULE_CHANNEL,
    WorkerRepository,
    check_connection,
    defer_tasks,
    notify_scheduler,
    procrastinate_schema_missing,
    take_scheduler_lock,
)
from atelier.dispatch import policy, rounds
from atelier.dispatch.base import Capacity
from atelier.dispatch.ledger import JobLedger
from atelier.settings import Settings

log = logging.getLogger("atelier.cluster")

RUN_TASK = "atelier.run_attempt"
WAKING_EVENTS = {
    events.QUEUED,
    events.REQUEUED,
    events.COMPLETED,
    events.FAILED,
    events.CANCELLED,
}


def worker_queue(name: str) -> str:
    return f"atelier-worker-{name}"


def task_app(settings: Settings) -> procrastinate.App:
    """The procrastinate app both sides share: the scheduler defers, workers run."""
    connector = procrastinate.PsycopgConnector(
        conninfo=asyncpg_dsn(settings.resolved_database_url),
        # (procrastinate's pool checks a connection before use, so a PostgreSQL restart
        # leaves no dead ones behind.)
        min_size=1,
        max_size=4,
    )
    return procrastinate.App(connector=connector)


async def install_task_schema(ledger: JobLedger, app: procrastinate.App) -> None:
    """procrastinate's tables, once per database, whoever starts first."""
    async with ledger.database.transaction() as session:
        if await procrastinate_schema_missing(session):
            log.info("installing procrastinate's schema")
            await app.schema_manager.apply_schema_async()


class ClusterScheduler:
    """Stands for election and, while it holds the lock, runs scheduling rounds.

    ``standby``: an API replica's scheduler leaves the lead to the workers while any of
    them is alive (a replica's event loop is busy with submits and streams exactly when
    the queue fills up); it leads only when no worker is, so leases still expire.
    The leader listens on ``SCHEDULE_CHANNEL`` on its lock connection: a worker's
    ``wake()`` when a slot frees reaches it at once, not at the next poll; a submit's
    ``queued`` event reaches it through the event bus.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: JobLedger,
        bus: PostgresEventBus,
        standby: bool = False,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.bus = bus
        self.standby = standby
        self.owner_caps: dict[str | None, int] = {}
        self.leading = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._notify: asyncio.Task[None] | None = None
        self._notify_again = False
        self.workers_seen: Capacity | None = None  # live workers, as last looked at
        self._object_info: dict[tuple[str, Any], dict[str, Any] | None] = {}
        self._sent_checkpoint: dict[str, str] = {}  # worker -> checkpoint of its last job
        self.window = rounds.QueueWindow()
        self._last_backend: str | None = None
        self._stopping = False

    def wake(self, *, tell_leader: bool = True) -> None:
        """Look at the queue now: here if this process leads, else (``tell_leader``)
        NOTIFY the leader. Every NOTIFY commit takes PostgreSQL's one notification-queue
        lock, so only what the events trigger does not already announce should send it."""
        self._wake.set()
        if not tell_leader or self.leading.is_set() or self._stopping:
            return
        if self._notify is not None and not self._notify.done():
            self._notify_again = True  # one more after the one under way
            return
        self._notify = asyncio.create_task(self._send_wake(), name="cluster-scheduler-wake")

    async def _send_wake(self) -> None:
        while True:
            self._notify_again = False
            try:
                async with self.ledger.database.transaction() as session:
                    await notify_scheduler(session)
            except Exception as exc:  # the leader's poll is the safety net
                log.warning("could not wake the scheduler (%s)", type(exc).__name__)
                return
            if not self._notify_again:
                return

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._lead(), name="cluster-scheduler"),
            asyncio.create_task(self._follow_events(), name="cluster-scheduler-events"),
        ]

    async def stop(self) -> None:
        # A flag as well as the cancel (Python 3.11's wait_for can swallow a cancel).
        self._stopping = True
        self._wake.set()
        tasks = [*self._tasks, *([self._notify] if self._notify is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self.leading.clear()

    async def _follow_events(self) -> None:
        async with self.bus.subscribe() as subscription:
            while True:
                event = await subscription.queue.get()
                if event.type in WAKING_EVENTS:
                    self._wake.set()

    async def _stand_by(self) -> bool:
        """Whether this process leaves the lead to a live worker now."""
        if not self.standby:
            return False
        try:
            async with self.ledger.unit() as unit:
                alive = await WorkerRepository(unit.session).alive(self.alive_since())
        except Exception:  # PostgreSQL away: stand for election as usual
            return False
        self._saw(alive)
        return bool(alive)

    def _saw(self, alive: list[Any]) -> None:
        taking = sum(worker.state in ("up", "degraded") for worker in alive)
        self.workers_seen = Capacity("worker", len(alive), taking)

    async def _lead(self) -> None:
        """Hold the advisory lock (waiting for it while another process has it), and
        schedule while holding it. A lost connection gives the lock up."""
        dsn = asyncpg_dsn(self.settings.resolved_database_url)
        following = self.bus.read_every
        while not self._stopping:
            if await self._stand_by():
                await asyncio.sleep(self.settings.poll_interval)
                continue
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("scheduler cannot reach PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            try:
                elected = False
                while not self._stopping and not elected:
                    elected = await take_scheduler_lock(connection)
                    if not elected:
                        await asyncio.sleep(self.settings.poll_interval)
                        if await self._stand_by():
                            break
                if elected and not self._stopping:
                    await connection.add_listener(SCHEDULE_CHANNEL, lambda *_: self._wake.set())
                    log.info("this process schedules the cluster")
                    self.leading.set()
                    # A submit reaches the leader as its ``queued`` event: a worker that
                    # leads reads events as often as a replica does while it leads.
                    self.bus.read_every = min(following, READ_EVERY)
                    await self._schedule(connection)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("scheduler lost PostgreSQL (%s); standing for election again", exc)
            finally:
                self.leading.clear()
                self.bus.read_every = following
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)
            await asyncio.sleep(0.2)

    async def _schedule(self, connection: asyncpg.Connection) -> None:
        """Rounds until stopped, the connection drops, or (standby) a worker is alive."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.expire_leases()
                await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster scheduling round failed; retrying")
            if self.standby and self.workers_seen is not None and self.workers_seen.known:
                log.info("a worker is alive; leaving the scheduling to the workers")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            await check_connection(connection)  # still holding the lock?

    def alive_since(self) -> Any:
        return utcnow() - timedelta(seconds=self.settings.worker_lease_timeout)

    async def expire_leases(self) -> int:
        """Requeue running jobs of workers whose lease ran out."""
        async with self.ledger.unit() as unit:
            workers = WorkerRepository(unit.session)
            alive = [w.name for w in await workers.alive(self.alive_since())]
            orphans = await workers.running_elsewhere(alive)
        for job_id, backend, attempt_id in orphans:
            log.warning("worker %s lost its lease; requeueing job %s", backend, job_id)
            await self.ledger.requeue(
                job_id,
                attempt_id,
                f"worker {backend} stopped heartbeating",
                max_attempts=self.settings.max_attempts,
            )
        return len(orphans)

    async def dispatch_once(self) -> int:
        """One round in one transaction: read the free slots and the queue, run the
        policy, claim each pair and defer its task on the worker's queue. A round that
        fails leaves nothing half done (no claim without its task, no task without its
        claim)."""
        async with self.ledger.unit() as unit:
            repository = WorkerRepository(unit.session)
            workers = await repository.alive(self.alive_since())
            self._saw(workers)
            running = await repository.running_by_backend()
            slots = []
            for worker in workers:
                free = worker.slots - running.get(worker.name, 0)
                if free <= 0 or worker.state not in ("up", "degraded"):
                    continue
                cache_key = (worker.name, worker.started_at)
                if cache_key not in self._object_info:
                    self._object_info[cache_key] = await repository.object_info(worker.name)
                info = self._object_info[cache_key]
                device = (worker.system_stats.get("devices") or [{}])[0] or {}
                slots.append(
                    policy.Slot(
                        worker.name,
                        free,
                        frozenset(info) if info is not None else None,
                        checkpoint=self._sent_checkpoint.get(worker.name, worker.checkpoint),
                        vram_total=device.get("vram_total"),
                        models=capabilities.backend_models(info),
                        idle=running.get(worker.name, 0) == 0,
                    )
                )
            if not slots:
                return 0
            jobs = await self.window.read(unit.jobs)
            if not jobs:
                return 0
            by_id: dict[str, QueuedJob] = {job.id: job for job in jobs}
            # The keys table is the truth for per-key caps: a worker leading the
            # scheduler has no key service of its own to keep ``owner_caps`` fresh.
            caps: dict[str | None, int] = dict(self.owner_caps)
            caps.update(await KeyRepository(unit.session).running_caps())
            rules = rounds.rules(
                self.settings,
                last_backend=self._last_backend,
                owner_caps=caps,
                in_flight=await repository.running_by_owner(),
            )
            tasks: list[tuple[str, dict[str, str]]] = []
            sent: dict[str, str] = {}
            for job_id, worker_name in policy.assign(
                self.window.candidates(jobs, utcnow()), slots, rules
            ):
                job = by_id[job_id]
                attempt_id = await self.ledger.claim_in(unit, job_id, worker_name, job.attempt + 1)
                if attempt_id is None:
                    continue  # cancelled meanwhile
                self._last_backend = worker_name
                if job.checkpoint is not None:
                    sent[worker_name] = job.checkpoint
                # No procrastinate lock: the attempt id in the jobs table is the lock,
                # and a dead worker's task would hold a procrastinate lock forever.
                tasks.append(
                    (worker_queue(worker_name), {"job_id": job_id, "attempt_id": attempt_id})
                )
            await defer_tasks(unit.session, RUN_TASK, tasks)
        self._sent_checkpoint.update(sent)
        return len(tasks)


class ClusterDispatcher:
    """The Dispatcher of an API replica in the cluster shape: it runs nothing itself,
    and schedules only while it holds the cluster's scheduler lock."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: JobLedger,
        bus: PostgresEventBus,
        owner_caps: dict[str | None, int],
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.app = task_app(settings)
        self.scheduler = ClusterScheduler(settings, ledger=ledger, bus=bus, standby=True)
        self.scheduler.owner_caps = owner_caps  # the same dict, kept fresh by its owner

    @property
    def owner_caps(self) -> dict[str | None, int]:
        return self.scheduler.owner_caps

    @owner_caps.setter
    def owner_caps(self, caps: dict[str | None, int]) -> None:
        self.scheduler.owner_caps = caps

    async def start(self) -> None:
        await self.app.open_async()
        await install_task_schema(self.ledger, self.app)
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.app.close_async()

    def wake(self) -> None:
        # A submit: its ``queued`` event's NOTIFY (the events trigger) already wakes the
        # leader through its event bus; a NOTIFY of its own per submit would only queue
        # up behind the others at commit (pg_stat_activity showed COMMITs waiting on
        # the notification lock during a submit burst).
        self.scheduler.wake(tell_leader=False)

    def request_cancel(self, job_id: str) -> None:
        # The durable flag and its cancel_requested event reach the worker that runs
        # the job through the event bus (PostgreSQL NOTIFY); nothing runs here.
        return None

    def capacity(self) -> Capacity | None:
        """Live workers as the scheduler last saw them (each poll, standing by or leading)."""
        return self.scheduler.workers_seen

    async def describe_backends(self) -> list[dict[str, Any]]:
        """Every registered worker as /api/v1/backends shows a backend."""
        lease = timedelta(seconds=self.settings.worker_lease_timeout)
        async with self.ledger.unit() as unit:
            repository = WorkerRepository(unit.session)
            workers = await repository.all()
            running = await repository.running_jobs_by_backend()
        now = utcnow()
        described = []
        for worker in sorted(workers, key=lambda w: w.name):
            device = (worker.system_stats.get("devices") or [{}])[0] or {}
            alive = not worker.stopped and now - worker.heartbeat_at <= lease
            jobs = running.get(worker.name, [])
            described.append(
                {
                    "name": worker.name,
                    "url": worker.url,
                    "status": worker.state if alive else "down",
                    "vram_total": device.get("vram_total"),
                    "vram_free": device.get("vram_free"),
                    "slots": worker.slots,
                    "queue_length": len(jobs),
                    "current_jobs": sorted(jobs),
                    "last_error": worker.last_error
                    or (None if alive else "no heartbeat (worker stopped or lost)"),
                    "loaded_model": worker.checkpoint,
                    "last_heartbeat": worker.heartbeat_at.isoformat(),
                }
            )
        return described

    async def drain(self, timeout: float = 60.0) -> None:
        async def idle() -> None:
            while True:
                async with self.ledger.unit() as unit:
                    counts = await unit.jobs.count_by_status()
                if not counts["queued"] and not counts["running"]:
                    return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(idle(), timeout)
