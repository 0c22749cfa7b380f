"""Every change of a job's state, each one a conditional UPDATE plus its event.

The dispatcher, the runners, the workers and the jobs service all change jobs through
here, and here applies only the named transitions of ``atelier.job_state`` (where the
state machine is drawn): claim, start, progress, move, complete, fail, cancel,
request_cancel, requeue and retry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

from atelier import events
from atelier.db.database import Database
from atelier.db.tables import ArtifactRow, AttemptRow, utcnow
from atelier.db.unit import UnitOfWork, unit_of_work
from atelier.dispatch.outputs import CollectedOutput
from atelier.errors import JobNotFound, JobStateConflict
from atelier.events import EventBus
from atelier.job_state import (
    CANCEL_QUEUED,
    CANCEL_RUNNING,
    CLAIM,
    COMPLETE,
    FAIL,
    FAIL_UNRUN,
    MOVE,
    PROGRESS,
    REQUEST_CANCEL,
    REQUEUE,
    RETRY,
    START,
    AttemptStatus,
    JobStatus,
    Transition,
)

Q, R = JobStatus.QUEUED, JobStatus.RUNNING
log = logging.getLogger("atelier.ledger")


class JobLedger:
    def __init__(self, database: Database, bus: EventBus, *, progress_window: float = 0.05) -> None:
        self.database = database
        self.bus = bus
        # Progress from every running job is written in one transaction per window:
        # a sampler reports many steps a second, on many backends at once.
        self._progress_window = progress_window
        self._progress: list[tuple[str, str, dict[str, Any]]] = []
        self._started: dict[str, tuple[str, datetime]] = {}
        self._progress_lock = asyncio.Lock()
        self._progress_flusher: asyncio.Task[None] | None = None
        self._last_progress_flush = 0.0

    async def close(self) -> None:
        """Write the progress still waiting for its window."""
        if self._progress_flusher is not None:
            await asyncio.gather(self._progress_flusher, return_exceptions=True)

    def unit(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return unit_of_work(self.database, self.bus)

    async def claim(self, job_id: str, backend: str, attempt: int) -> str | None:
        """queued -> running on ``backend``; returns the new attempt id (the prompt_id)."""
        async with self.unit() as unit:
            return await self.claim_in(unit, job_id, backend, attempt)

    async def claim_in(
        self, unit: UnitOfWork, job_id: str, backend: str, attempt: int
    ) -> str | None:
        """``claim`` inside the caller's transaction (the cluster scheduler claims a whole
        round, and defers its tasks, in one)."""
        attempt_id = str(uuid.uuid4())
        now = utcnow()
        claimed = await unit.jobs.transition(
            job_id,
            CLAIM,
            backend=backend,
            attempt_id=attempt_id,
            attempt=attempt,
            started_at=now,
            progress=0.0,
            current_node=None,
            current_node_type=None,
            step=None,
            max_steps=None,
            stage=None,
            eta_seconds=None,
        )
        if not claimed:
            return None
        await _open_attempt(unit, job_id, attempt_id, attempt, backend, now)
        return attempt_id

    async def progress(self, job_id: str, attempt_id: str, snapshot: dict[str, Any]) -> None:
        """Record progress: at once when nothing was written for a window, else with the
        next window's batch. Never blocks the caller on the database."""
        self._progress.append((job_id, attempt_id, snapshot))
        self._schedule_progress()

    def _schedule_progress(self) -> None:
        if self._progress_flusher is None or self._progress_flusher.done():
            # Its own context: the batch holds many jobs, so its log lines name none.
            self._progress_flusher = asyncio.create_task(
                self._flush_progress(), context=contextvars.Context()
            )

    async def _flush_progress(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._last_progress_flush + self._progress_window - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        while self._progress or self._started:
            self._last_progress_flush = loop.time()
            try:
                await self.flush_progress()
            except Exception:
                log.exception("could not record progress")

    async def flush_progress(self) -> None:
        """Write waiting progress now. Batches are taken and written under one lock, so
        their events keep the order they came in."""
        async with self._progress_lock:
            if self._progress or self._started:
                async with self.unit() as unit:
                    await self._write_progress(unit)

    @asynccontextmanager
    async def _after_progress(self) -> AsyncIterator[UnitOfWork]:
        """A transaction that first writes the progress still waiting: a job's last
        steps go before its end, in the same commit (a transaction a job fewer than a
        flush of its own), under the progress lock, so events keep their order."""
        async with self._progress_lock, self.unit() as unit:
            await self._write_progress(unit)
            yield unit

    async def _write_progress(self, unit: UnitOfWork) -> None:
        batch, self._progress = self._progress, []
        started, self._started = self._started, {}
        latest = {job_id: (attempt_id, snapshot) for job_id, attempt_id, snapshot in batch}
        for job_id, (attempt_id, at) in started.items():
            await unit.jobs.transition(job_id, START, if_attempt=attempt_id, started_at=at)
        current: set[str] = set()
        for job_id, (attempt_id, snapshot) in latest.items():
            if await unit.jobs.transition(
                job_id,
                PROGRESS,
                if_attempt=attempt_id,
                progress=snapshot["progress"],
                current_node=snapshot.get("node"),
                current_node_type=snapshot.get("node_type"),
                step=snapshot.get("step"),
                max_steps=snapshot.get("max_steps", snapshot.get("max")),
                stage=snapshot.get("stage"),
                eta_seconds=snapshot.get("eta_seconds"),
            ):
                current.add(job_id)
        for job_id, _attempt, snapshot in batch:
            if job_id in current:
                await unit.emit(job_id, events.PROGRESS, snapshot)

    async def complete(
        self, job_id: str, attempt_id: str, outputs: list[CollectedOutput], *, owner: str | None
    ) -> bool:
        now = utcnow()
        async with self._after_progress() as unit:
            changed = await unit.jobs.transition(
                job_id,
                COMPLETE,
                if_attempt=attempt_id,
                progress=1.0,
                current_node=None,
                current_node_type=None,
                stage=None,
                eta_seconds=None,
                finished_at=now,
                error=None,
            )
            if not changed:
                return False
            await unit.jobs.finish_attempt(attempt_id, AttemptStatus.COMPLETED)
            for output in outputs:
                artifact = _artifact_row(job_id, owner, output)
                await unit.artifacts.add(artifact)
                await unit.emit(
                    job_id,
                    events.OUTPUT,
                    {
                        "artifact_id": artifact.id,
                        "node_id": output.node_id,
                        "kind": artifact.kind,
                        "filename": artifact.filename,
                        "content_type": artifact.content_type,
                    },
                )
            await unit.emit(
                job_id,
                events.COMPLETED,
                {"status": JobStatus.COMPLETED.value, "outputs": len(outputs)},
            )
        return True

    async def fail(self, job_id: str, attempt_id: str | None, error: dict[str, Any]) -> bool:
        async with self._after_progress() as unit:
            changed = await unit.jobs.transition(
                job_id,
                FAIL if attempt_id else FAIL_UNRUN,
                if_attempt=attempt_id,
                error=error,
                finished_at=utcnow(),
            )
            if changed:
                if attempt_id:
                    await unit.jobs.finish_attempt(attempt_id, AttemptStatus.FAILED, error)
                await unit.emit(job_id, events.FAILED, {"status": FAIL.target, "error": error})
        return bool(changed)

    async def cancelled(self, job_id: str, attempt_id: str | None) -> bool:
        """running (or queued) -> cancelled."""
        async with self._after_progress() as unit:
            changed = await unit.jobs.transition(
                job_id,
                CANCEL_RUNNING if attempt_id else CANCEL_QUEUED,
                if_attempt=attempt_id,
                finished_at=utcnow(),
                current_node=None,
                current_node_type=None,
            )
            if changed:
                if attempt_id:
                    await unit.jobs.finish_attempt(attempt_id, AttemptStatus.CANCELLED)
                await unit.emit(job_id, events.CANCELLED, {"status": CANCEL_QUEUED.target})
        return bool(changed)

    async def request_cancel(self, job_id: str, *, owner: str | None) -> bool:
        """A client's cancel: a queued job is cancelled at once (False); a running one gets
        the durable cancel flag that its runner, on any replica or worker, acts on (True:
        tell the dispatcher). Finished jobs conflict; a cancelled one stays cancelled."""
        async with self.unit() as unit:
            job = await unit.jobs.get(job_id, owner=owner)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            raise JobStateConflict(f"job {job_id} is already {job.status}")
        if await self.cancelled(job_id, None):
            return False
        async with self.unit() as unit:
            # Running (or claimed a moment ago).
            if await unit.jobs.transition(job_id, REQUEST_CANCEL, cancel_requested=True):
                await unit.emit(job_id, events.CANCEL_REQUESTED, {"status": R.value})
        return True

    async def retry(self, job_id: str, *, owner: str | None) -> None:
        """failed | cancelled -> queued, as it was submitted (the attempt count goes on)."""
        async with self.unit() as unit:
            job = await unit.jobs.get(job_id, owner=owner)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            retried = await unit.jobs.transition(
                job_id,
                RETRY,
                cancel_requested=False,
                error=None,
                finished_at=None,
                queued_at=utcnow(),
                **_NO_ATTEMPT,
            )
            if not retried:
                raise JobStateConflict(
                    f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
                )
            await unit.emit(job_id, events.QUEUED, {"status": RETRY.target, "retry": True})

    async def requeue(
        self, job_id: str, attempt_id: str, reason: str, *, max_attempts: int
    ) -> JobStatus | None:
        """The attempt was lost with its backend: queue the job again, or fail it once it
        has lost ``max_attempts`` backends. Returns the job's new status (None: deleted)."""
        error = {"type": "backend_lost", "message": reason, "retryable": True}
        async with self._after_progress() as unit:
            job = await unit.jobs.get(job_id)
            if job is None:
                return None
            if job.attempt_id != attempt_id or job.status != R:
                return JobStatus(job.status)
            await unit.jobs.finish_attempt(attempt_id, AttemptStatus.LOST, error)
            if job.cancel_requested:
                await _end(unit, job_id, attempt_id, CANCEL_RUNNING, {})
                return CANCEL_RUNNING.target
            # Retries and moves are not losses: count only the attempts that were lost.
            attempts = await unit.jobs.attempts(job_id)
            lost = sum(a.status == AttemptStatus.LOST for a in attempts)
            if lost >= max_attempts:
                error = {
                    **error,
                    "message": f"{reason} (gave up after {lost} lost attempts)",
                    "retryable": False,
                }
                await _end(unit, job_id, attempt_id, FAIL, {"error": error}, error=error)
                return FAIL.target
            await unit.jobs.transition(job_id, REQUEUE, if_attempt=attempt_id, **_NO_ATTEMPT)
            await unit.emit(
                job_id,
                events.REQUEUED,
                {"status": REQUEUE.target, "reason": reason, "attempt": job.attempt},
            )
        return REQUEUE.target

    async def execution_started(self, job_id: str, attempt_id: str) -> None:
        """ComfyUI began executing (the prompt may have waited in its queue, pipelined).
        Written with the next progress batch."""
        self._started[job_id] = (attempt_id, utcnow())
        self._schedule_progress()

    async def transfer(self, job_id: str, attempt_id: str, backend: str) -> str | None:
        """Move a job that was waiting, pipelined, in one backend's queue (and has been
        deleted there) to another backend, as a new attempt, in one transaction."""
        new_attempt = str(uuid.uuid4())
        now = utcnow()
        async with self._after_progress() as unit:
            job = await unit.jobs.get(job_id)
            if job is None or job.cancel_requested:
                return None
            moved = await unit.jobs.transition(
                job_id,
                MOVE,
                if_attempt=attempt_id,
                backend=backend,
                attempt_id=new_attempt,
                attempt=job.attempt + 1,
                started_at=now,
            )
            if not moved:
                return None
            await unit.jobs.finish_attempt(attempt_id, AttemptStatus.MOVED)
            await _open_attempt(
                unit, job_id, new_attempt, job.attempt + 1, backend, now, moved=True
            )
        return new_attempt

    async def cancel_requested(self, job_id: str) -> bool:
        async with self.unit() as unit:
            job = await unit.jobs.get(job_id)
        return bool(job is None or job.cancel_requested or job.status != R)


# A job without a current attempt: queued again, its last run's traces cleared.
_NO_ATTEMPT: dict[str, Any] = {
    "backend": None,
    "attempt_id": None,
    "progress": 0.0,
    "current_node": None,
    "current_node_type": None,
    "step": None,
    "max_steps": None,
    "stage": None,
    "eta_seconds": None,
}


async def _end(
    unit: UnitOfWork,
    job_id: str,
    attempt_id: str,
    move: Transition,
    data: dict[str, Any],
    **values: Any,
) -> None:
    """A running job ends (``move`` leads to a terminal status); its event says so."""
    await unit.jobs.transition(job_id, move, if_attempt=attempt_id, finished_at=utcnow(), **values)
    await unit.emit(job_id, move.target.value, {"status": move.target.value, **data})


async def _open_attempt(
    unit: UnitOfWork,
    job_id: str,
    attempt_id: str,
    number: int,
    backend: str,
    now: datetime,
    **extra: Any,
) -> None:
    """Record a new attempt (its id is the ComfyUI prompt_id) and say so."""
    await unit.jobs.add_attempt(
        AttemptRow(
            id=attempt_id,
            job_id=job_id,
            number=number,
            backend=backend,
            status=AttemptStatus.RUNNING,
            started_at=now,
        )
    )
    data = {"status": R.value, "backend": backend, "attempt": number, "prompt_id": attempt_id}
    await unit.emit(job_id, events.RUNNING, {**data, **extra})


def _artifact_row(job_id: str, owner: str | None, output: CollectedOutput) -> ArtifactRow:
    return ArtifactRow(
        id=str(uuid.uuid4()),
        job_id=job_id,
        owner=owner,
        role="output",
        node_id=output.node_id,
        filename=output.filename,
        kind=output.media.kind,
        content_type=output.media.content_type,
        size=output.blob.size,
        sha256=output.blob.sha256,
        width=output.media.width,
        height=output.media.height,
        animated=output.media.animated,
        text=output.text,
        storage_key=output.blob.key,
        created_at=utcnow(),
    )
