"""The in-process dispatcher of the single-node shape.

A scheduler loop wakes on "a job was queued", "a backend freed up or came back", or the
poll interval (a safety net), whichever comes first; it claims queued jobs for free
backends and starts a JobRunner for each. On start it first re-attaches to the jobs that
were running when Atelier last stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from atelier.comfyui import capabilities
from atelier.db.repositories import QueuedJob
from atelier.db.tables import JobRow, utcnow
from atelier.dispatch import policy, rounds
from atelier.dispatch.backends import BackendPool
from atelier.dispatch.base import Capacity
from atelier.dispatch.ledger import JobLedger
from atelier.dispatch.runner import Attempt, JobRunner
from atelier.job_state import JobStatus
from atelier.settings import Settings
from atelier.storage.base import ArtifactStore

log = logging.getLogger("atelier.dispatch")


class LocalDispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: JobLedger,
        pool: BackendPool,
        store: ArtifactStore,
        owner_caps: dict[str | None, int],
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.pool = pool
        self.store = store
        self.runners: dict[str, JobRunner] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_backend: str | None = None  # where round robin left off
        self._early_cancels: set[str] = set()
        self.window = rounds.QueueWindow()
        # Per-owner running-jobs caps (API keys' overrides); their owner keeps them fresh.
        self.owner_caps = owner_caps
        pool.watch(self.wake)  # a backend came back or freed a slot

    async def start(self) -> None:
        await self.reattach()
        self._loop_task = asyncio.create_task(self._loop(), name="scheduler")

    def wake(self) -> None:
        self._wake.set()

    def request_cancel(self, job_id: str) -> None:
        runner = self.runners.get(job_id)
        if runner is not None:
            runner.cancel.set()
        else:
            # Claimed a moment ago, its runner not started yet: it will see this.
            self._early_cancels.add(job_id)

    async def stop(self) -> None:
        """Stop taking work, then stop following jobs; they stay running in ComfyUI and
        the next start re-attaches to them."""
        self._stopping.set()
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def capacity(self) -> Capacity:
        return Capacity("backend", len(self.pool.backends), self.pool.up_count)

    async def describe_backends(self) -> list[dict[str, Any]]:
        return [backend.describe() for backend in self.pool]

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until no job is queued or running (tests and benchmarks use this)."""

        async def idle() -> None:
            while True:
                async with self.ledger.unit() as unit:
                    counts = await unit.jobs.count_by_status()
                if not counts["queued"] and not counts["running"] and not self.runners:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(idle(), timeout)

    async def reattach(self) -> None:
        async with self.ledger.unit() as unit:
            running = await unit.jobs.with_status(JobStatus.RUNNING)
        for job in running:
            backend = self.pool.get(job.backend)
            if backend is None or job.attempt_id is None:
                await self.ledger.requeue(
                    job.id,
                    job.attempt_id or "",
                    f"backend {job.backend!r} is no longer configured",
                    max_attempts=self.settings.max_attempts,
                )
                continue
            log.info("re-attaching to job %s on %s", job.id, backend.name)
            self._start_runner(job, job.attempt_id, job.attempt, reattach=True)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.dispatch_once()
            except Exception:
                log.exception("scheduler round failed; retrying after the poll interval")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    async def dispatch_once(self) -> int:
        slots = [
            policy.Slot(
                b.name,
                b.free_slots,
                b.node_classes,
                checkpoint=b.last_checkpoint,
                vram_total=b.device.get("vram_total"),
                models=capabilities.backend_models(b.object_info),
                idle=not b.running,
            )
            for b in self.pool
            if b.free_slots
        ]
        if not slots:
            return 0
        # One transaction a round: the window, the claims, and the graphs of the jobs
        # claimed (the only graphs a round reads). The policy between them is CPU only.
        claimed: list[tuple[QueuedJob, str, str]] = []
        async with self.ledger.unit() as unit:
            window = await self.window.read(unit.jobs)
            picks = self._pick(window, slots) if window else []
            by_id = {job.id: job for job in window}
            for job_id, backend_name in picks:
                job = by_id[job_id]
                attempt_id = await self.ledger.claim_in(unit, job_id, backend_name, job.attempt + 1)
                if attempt_id is not None:  # else cancelled meanwhile
                    claimed.append((job, backend_name, attempt_id))
            graphs = {
                job.id: self.window.fresh_graphs[job.id]
                for job, _, _ in claimed
                if job.id in self.window.fresh_graphs
            }
            if unread := [job.id for job, _, _ in claimed if job.id not in graphs]:
                graphs.update(await unit.jobs.graphs(unread))
        if not window:
            self._move_pipelined_to_idle_backends()
            return 0
        if not picks:
            return 0
        for job, backend_name, attempt_id in claimed:
            self._last_backend = backend_name
            backend = self.pool.get(backend_name)
            if backend is not None and job.checkpoint is not None:
                if backend.last_checkpoint != job.checkpoint:
                    backend.model_loads += 1
                backend.last_checkpoint = job.checkpoint
            row = JobRow(
                id=job.id,
                graph=graphs[job.id],
                owner=job.owner,
                backend=backend_name,
                cancel_requested=False,
            )
            self._start_runner(row, attempt_id, job.attempt + 1, reattach=False)
        if len(window) == len(claimed):
            self._move_pipelined_to_idle_backends()
        return len(claimed)

    def _pick(self, window: list[QueuedJob], slots: list[policy.Slot]) -> list[tuple[str, str]]:
        """The policy's (job id, backend) picks for this round."""
        in_flight: dict[str | None, int] = {}
        for runner in self.runners.values():
            in_flight[runner.attempt.owner] = in_flight.get(runner.attempt.owner, 0) + 1
        rules = rounds.rules(
            self.settings,
            last_backend=self._last_backend,
            owner_caps=self.owner_caps,
            in_flight=in_flight,
        )
        return policy.assign(self.window.candidates(window, utcnow()), slots, rules)

    def _move_pipelined_to_idle_backends(self) -> None:
        """The queue is empty but a backend sits idle while another has a job waiting,
        pipelined, behind its current one: move that job over (the tail of a batch)."""
        idle = [b for b in self.pool if b.accepts_work and not b.running]
        if not idle:
            return
        waiting = sorted(
            (
                r
                for r in self.runners.values()
                if not r.started
                and r.move_target is None
                and any(o.started for o in self.runners.values() if o.backend is r.backend)
            ),
            key=lambda r: r.attempt.number,
        )
        for backend in idle:
            classes = backend.node_classes
            models = capabilities.backend_models(backend.object_info)
            runner = next(
                (
                    r
                    for r in waiting
                    if (classes is None or capabilities.graph_classes(r.attempt.graph) <= classes)
                    and (models is None or capabilities.graph_models(r.attempt.graph) <= models)
                ),
                None,
            )
            if runner is None:
                continue
            waiting.remove(runner)
            backend.running.add(runner.job_id)  # reserve the slot while the move happens
            runner.move_target = backend.name

    def _moved(self, runner: JobRunner, target: str, new_attempt: str | None) -> None:
        backend = self.pool.get(target)
        if backend is None:
            return
        if new_attempt is None:
            backend.running.discard(runner.job_id)
            self._wake.set()
            return
        job = JobRow(
            id=runner.job_id,
            graph=runner.attempt.graph,
            owner=runner.attempt.owner,
            backend=target,
            cancel_requested=False,
        )
        self._start_runner(job, new_attempt, runner.attempt.number + 1, reattach=False)

    def _start_runner(self, job: JobRow, attempt_id: str, number: int, *, reattach: bool) -> None:
        backend = self.pool.get(job.backend)
        assert backend is not None
        runner = JobRunner(
            Attempt(job.id, attempt_id, number, job.graph, job.owner, reattach=reattach),
            backend,
            pool=self.pool,
            ledger=self.ledger,
            store=self.store,
            settings=self.settings,
        )
        backend.running.add(job.id)
        runner.on_move = self._moved
        self.runners[job.id] = runner
        if job.cancel_requested or job.id in self._early_cancels:
            self._early_cancels.discard(job.id)
            runner.cancel.set()
        task = asyncio.create_task(runner.run(), name=f"job-{job.id}")
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            backend.running.discard(job.id)
            self._early_cancels.discard(job.id)
            if self.runners.get(job.id) is runner:
                del self.runners[job.id]
            self._wake.set()

        task.add_done_callback(done)
