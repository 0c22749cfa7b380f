"""``atelier worker``: one per GPU box, next to its ComfyUI (the cluster shape).

It takes the attempts the cluster scheduler assigned to it from its own procrastinate
queue and runs each with the same ``JobRunner`` as the single-node shape (pipelined
slots, progress, outputs into the shared store, cancel). It heartbeats its ComfyUI's
health, VRAM and loaded model into the ``workers`` table, which is also its lease; it
hears cancels from any replica through the event bus; and it reconciles: on start and
every few heartbeats it looks for jobs the tables say run here that it does not run
(a restart within the lease, a lost task) and re-attaches to them by prompt id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from atelier import events
from atelier.db.database import Database
from atelier.db.notify import PostgresEventBus
from atelier.db.tables import utcnow
from atelier.db.workers import WorkerRepository
from atelier.dispatch.backends import BackendPool
from atelier.dispatch.cluster import (
    RUN_TASK,
    ClusterScheduler,
    install_task_schema,
    task_app,
    worker_queue,
)
from atelier.dispatch.ledger import JobLedger
from atelier.dispatch.runner import Attempt, JobRunner
from atelier.job_state import JobStatus
from atelier.settings import Settings
from atelier.storage import ArtifactStore, build_store

log = logging.getLogger("atelier.worker")

RECONCILE_EVERY = 5  # heartbeats
STALE_CLAIM = 60.0  # seconds
WORKER_READ_EVERY = 0.25  # seconds between reads of the events table, at most


class Worker:
    def __init__(self, settings: Settings, *, comfyui: str, name: str, slots: int) -> None:
        if not settings.resolved_database_url.startswith("postgresql"):
            raise ValueError("a worker needs PostgreSQL: set ATELIER_DATABASE_URL")
        self.settings = settings
        self.name = name
        self.slots = slots
        self.database = Database(settings.resolved_database_url)
        # A worker follows events only for cancels and as the scheduler's safety net (a
        # freed slot reaches the leader by NOTIFY): reading the whole cluster's progress
        # 20 times a second in every worker cost CPU the jobs need.
        self.bus = PostgresEventBus(
            self.database,
            grace=settings.event_gap_grace,
            poll_interval=settings.poll_interval,
            read_every=WORKER_READ_EVERY,
        )
        self.store: ArtifactStore = build_store(settings)
        self.ledger = JobLedger(self.database, self.bus)
        self.pool = BackendPool(
            [f"{name}={comfyui}"],
            slots=slots,
            interval=settings.health_interval,
            timeout=settings.health_timeout,
        )
        self.backend = self.pool.backends[name]
        self.app = task_app(settings)
        self.app.task(name=RUN_TASK, queue=worker_queue(name))(self._run_task)
        self.scheduler = ClusterScheduler(settings, ledger=self.ledger, bus=self.bus)
        self.runners: dict[str, tuple[JobRunner, asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._started_at = utcnow()
        self._object_info_sent: float = -1.0

    async def start(self) -> None:
        await self.database.migrate()
        await self.bus.start()
        await self.store.start()
        await self.pool.start()
        await self.app.open_async()
        await install_task_schema(self.ledger, self.app)
        await self.heartbeat()
        await self.reconcile(at_start=True)
        await self.scheduler.start()
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="worker-heartbeat"),
            asyncio.create_task(self._follow_cancels(), name="worker-cancels"),
            asyncio.create_task(self._take_tasks(), name="worker-tasks"),
        ]
        log.info("worker %s runs jobs on %s (%d slots)", self.name, self.backend.url, self.slots)

    async def _take_tasks(self) -> None:
        """procrastinate's worker loop on this worker's queue, started again whenever it
        ends (PostgreSQL restarted under it)."""
        while True:
            try:
                await self.app.run_worker_async(
                    queues=[worker_queue(self.name)],
                    name=self.name,
                    concurrency=self.slots,
                    wait=True,
                    install_signal_handlers=False,
                    listen_notify=True,
                    fetch_job_polling_interval=self.settings.poll_interval,
                    delete_jobs="successful",
                )
                log.warning("the task loop ended; starting it again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("the task loop failed (%s); starting it again", type(exc).__name__)
            await asyncio.sleep(1.0)

    async def run_until_stopped(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop taking work and following jobs. Prompts go on in ComfyUI and their jobs
        stay ``running``: a restart within the lease re-attaches to them."""
        await self.scheduler.stop()
        for task in self._tasks:
            task.cancel()
        for _, runner_task in list(self.runners.values()):
            runner_task.cancel()
        await asyncio.gather(
            *self._tasks, *(t for _, t in self.runners.values()), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            async with self.database.transaction() as session:
                await WorkerRepository(session).mark_stopped(self.name)
        await self.ledger.close()
        await self.app.close_async()
        await self.pool.close()
        await self.store.close()
        await self.bus.close()
        await self.database.close()

    # Heartbeat, lease and reconcile

    async def heartbeat(self) -> None:
        backend = self.backend
        send_info = backend.object_info is not None and (
            backend.object_info_at != self._object_info_sent
        )
        values: dict[str, Any] = {
            "name": self.name,
            "url": backend.url,
            "slots": self.slots,
            "state": backend.state.value,
            "last_error": backend.last_error,
            "checkpoint": backend.last_checkpoint,
            "system_stats": backend.system_stats,
            "object_info": backend.object_info,
            "started_at": self._started_at,
            "heartbeat_at": utcnow(),
            "stopped": False,
        }
        async with self.database.transaction() as session:
            await WorkerRepository(session).heartbeat(values, object_info=send_info)
        if send_info:
            self._object_info_sent = backend.object_info_at

    async def _heartbeats(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.settings.worker_heartbeat_interval)
            beats += 1
            try:
                await self.heartbeat()
                if beats % RECONCILE_EVERY == 0:
                    await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: the next beat tries again
                log.warning("heartbeat failed (%s)", type(exc).__name__)

    async def reconcile(self, *, at_start: bool = False) -> None:
        """Follow every job the tables say runs here (re-attach by prompt id). After the
        start, only claims old enough that their task cannot still be on its way:
        re-attaching to a prompt not yet submitted would find it "lost" (and requeue it,
        which is the right end for a claim whose task really was lost)."""
        async with self.database.transaction() as session:
            jobs = await WorkerRepository(session).running_on(self.name)
        # A claim whose task has not arrived after this long was lost with the process
        # that claimed it (a crash between claim and defer); under load a task can take
        # seconds, so the wait is generous.
        lost_after = max(STALE_CLAIM, 3 * self.settings.worker_lease_timeout)
        settled = utcnow() - timedelta(seconds=lost_after)
        for job in jobs:
            if not at_start and (job.started_at is None or job.started_at > settled):
                continue
            if job.id not in self.runners and job.attempt_id is not None:
                log.info("re-attaching to job %s (prompt %s)", job.id, job.attempt_id)
                self._start(
                    job.id,
                    job.attempt_id,
                    job.attempt,
                    job.graph,
                    job.owner,
                    checkpoint=job.checkpoint,
                    cancel=job.cancel_requested,
                    reattach=True,
                )

    # Running attempts

    async def _run_task(self, job_id: str, attempt_id: str) -> None:
        """The procrastinate task: run one attempt the scheduler assigned here."""
        async with self.ledger.unit() as unit:
            job = await unit.jobs.get(job_id, with_graph=True)
        if (
            job is None
            or job.status != JobStatus.RUNNING.value
            or job.attempt_id != attempt_id
            or job.backend != self.name
        ):
            return  # the attempt moved on (lease ran out, cancelled) before it got here
        if job_id in self.runners:
            await asyncio.shield(self.runners[job_id][1])  # re-attached already
            return
        task = self._start(
            job.id,
            attempt_id,
            job.attempt,
            job.graph,
            job.owner,
            checkpoint=job.checkpoint,
            cancel=job.cancel_requested,
            reattach=False,
        )
        await asyncio.shield(task)

    def _start(
        self,
        job_id: str,
        attempt_id: str,
        number: int,
        graph: dict[str, Any],
        owner: str | None,
        *,
        checkpoint: str | None,
        cancel: bool,
        reattach: bool,
    ) -> asyncio.Task[None]:
        runner = JobRunner(
            Attempt(job_id, attempt_id, number, graph, owner, reattach=reattach),
            self.backend,
            pool=self.pool,
            ledger=self.ledger,
            store=self.store,
            settings=self.settings,
        )
        if cancel:
            runner.cancel.set()
        if checkpoint is not None:
            self.backend.last_checkpoint = checkpoint
        self.backend.running.add(job_id)
        task = asyncio.create_task(runner.run(), name=f"job-{job_id}")
        self.runners[job_id] = (runner, task)

        def done(_: asyncio.Task[None]) -> None:
            self.backend.running.discard(job_id)
            if self.runners.get(job_id, (None, None))[0] is runner:
                del self.runners[job_id]
            self.scheduler.wake()

        task.add_done_callback(done)
        return task

    async def _follow_cancels(self) -> None:
        async with self.bus.subscribe() as subscription:
            while True:
                event = await subscription.queue.get()
                if event.type == events.CANCEL_REQUESTED and event.job_id in self.runners:
                    self.runners[event.job_id][0].cancel.set()
