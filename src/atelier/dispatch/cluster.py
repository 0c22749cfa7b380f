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
from atelier.db.notify import PostgresEventBus, asyncpg_dsn
from atelier.db.tables import JobRow, utcnow
from atelier.db.workers import (
    WorkerRepository,
    check_connection,
    procrastinate_schema_missing,
    take_scheduler_lock,
)
from atelier.dispatch import policy
from atelier.dispatch.ledger import JobLedger
from atelier.settings import Settings

log = logging.getLogger("atelier.cluster")

CLAIM_WINDOW = 32  # queued jobs per owner the scheduler looks at per round
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


def _classes(graph: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        str(node.get("class_type")) for node in graph.values() if isinstance(node, dict)
    )


class ClusterScheduler:
    def __init__(
        self, settings: Settings, *, ledger: JobLedger, bus: PostgresEventBus, app: Any
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.bus = bus
        self.app = app
        self.owner_caps: dict[str | None, int] = {}
        self.leading = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._object_info: dict[tuple[str, Any], dict[str, Any] | None] = {}
        self._sent_checkpoint: dict[str, str] = {}  # worker -> checkpoint of its last job
        self._last_backend: str | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._lead(), name="cluster-scheduler"),
            asyncio.create_task(self._follow_events(), name="cluster-scheduler-events"),
        ]

    async def stop(self) -> None:
        # A flag as well as the cancel (Python 3.11's wait_for can swallow a cancel).
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.leading.clear()

    async def _follow_events(self) -> None:
        async with self.bus.subscribe() as subscription:
            while True:
                event = await subscription.queue.get()
                if event.type in WAKING_EVENTS:
                    self._wake.set()

    async def _lead(self) -> None:
        """Hold the advisory lock (waiting for it while another process has it), and
        schedule while holding it. A lost connection gives the lock up."""
        dsn = asyncpg_dsn(self.settings.resolved_database_url)
        while not self._stopping:
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("scheduler cannot reach PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            try:
                while not self._stopping:
                    if await take_scheduler_lock(connection):
                        break
                    await asyncio.sleep(self.settings.poll_interval)
                if self._stopping:
                    return
                log.info("this process schedules the cluster")
                self.leading.set()
                await self._schedule(connection)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("scheduler lost PostgreSQL (%s); standing for election again", exc)
            finally:
                self.leading.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)
            await asyncio.sleep(0.2)

    async def _schedule(self, connection: asyncpg.Connection) -> None:
        while not self._stopping:
            try:
                await self.expire_leases()
                await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster scheduling round failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            await check_connection(connection)  # still holding the lock?

    def _alive_since(self) -> Any:
        return utcnow() - timedelta(seconds=self.settings.worker_lease_timeout)

    async def expire_leases(self) -> int:
        """Requeue running jobs of workers whose lease ran out."""
        async with self.ledger.unit() as unit:
            workers = WorkerRepository(unit.session)
            alive = [w.name for w in await workers.alive(self._alive_since())]
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
        async with self.ledger.unit() as unit:
            repository = WorkerRepository(unit.session)
            workers = await repository.alive(self._alive_since())
            running = await repository.running_by_backend()
            in_flight = await repository.running_by_owner()
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
            jobs = await unit.jobs.dispatchable(per_owner=CLAIM_WINDOW)
        if not jobs:
            return 0
        now = utcnow()
        by_id: dict[str, JobRow] = {job.id: job for job in jobs}
        candidates = [
            policy.Candidate(
                job.id,
                _classes(job.graph),
                priority=job.priority,
                owner=job.owner,
                checkpoint=job.checkpoint,
                vram=job.vram_required,
                waited=(now - job.created_at).total_seconds(),
                models=capabilities.graph_models(job.graph),
            )
            for job in jobs
        ]
        rules = policy.Policy(
            fair_share=self.settings.fair_share,
            affinity=self.settings.affinity,
            affinity_max_wait=self.settings.affinity_max_wait,
            owner_cap=self.settings.max_running_per_owner,
            round_robin=self.settings.scheduler == "round_robin",
            last_backend=self._last_backend,
            owner_caps=dict(self.owner_caps),
            in_flight=in_flight,
        )
        started = 0
        for job_id, worker_name in policy.assign(candidates, slots, rules):
            job = by_id[job_id]
            self._last_backend = worker_name
            attempt_id = await self.ledger.claim(job_id, worker_name, job.attempt + 1)
            if attempt_id is None:
                continue  # cancelled meanwhile
            if job.checkpoint is not None:
                self._sent_checkpoint[worker_name] = job.checkpoint
            # If this defer is lost (a crash right here), the worker finds the claimed job
            # when it next reconciles, so nothing waits forever.
            try:
                # No procrastinate lock: the attempt id in the jobs table is the lock,
                # and a dead worker's task would hold a procrastinate lock forever.
                await self.app.configure_task(
                    RUN_TASK, queue=worker_queue(worker_name)
                ).defer_async(job_id=job_id, attempt_id=attempt_id)
            except Exception as exc:
                await self.ledger.requeue(
                    job_id,
                    attempt_id,
                    f"could not hand the job to worker {worker_name}: {type(exc).__name__}",
                    max_attempts=self.settings.max_attempts,
                )
                raise
            started += 1
        return started


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
        self.scheduler = ClusterScheduler(settings, ledger=ledger, bus=bus, app=self.app)
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
        self.scheduler.wake()

    def request_cancel(self, job_id: str) -> None:
        # The durable flag and its cancel_requested event reach the worker that runs
        # the job through the event bus (PostgreSQL NOTIFY); nothing runs here.
        return None

    async def describe_workers(self) -> list[dict[str, Any]]:
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
