"""The run engine: a state machine over a run's steps, driven by job events.

It keeps no queue of its own. Every decision is made by ``advance(run_id)`` from the
tables: it reads the run, its steps and their jobs, moves steps along (a finished job
finishes its step; a step whose inputs are ready is submitted, joined or scored), and
writes the run's status and progress. Job events wake it for the run concerned; a
periodic resync advances every active run, so a missed event, a restart of Atelier or a
second replica changes nothing but latency. A step goes ``pending -> submitting ->
running`` with conditional updates, and its job carries the label ``studio_step`` =
``<step id>:<try>``, so a crash between the submit and the write finds the job again
instead of submitting it twice. A finished step is never run again unless a person asks
(retry, rerender) or a gate rerolls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from atelier import events
from atelier.db.database import Database
from atelier.db.studio import OutputRepository, RunRepository
from atelier.db.studio_tables import CharacterRow, RunRow, StepRow, StudioOutputRow
from atelier.db.tables import ArtifactRow, JobRow, utcnow
from atelier.errors import AtelierError, CapabilityMissing, JobStateConflict, ValidationFailed
from atelier.events import EventBus
from atelier.jobs.service import JobsService
from atelier.jobs.views import JobCreate
from atelier.media.inputs import copy_for_job
from atelier.production.gates import GateKeeper
from atelier.production.locks import KeyedLocks
from atelier.production.media_steps import MediaSteps
from atelier.production.run_state import (
    ACTIVE,
    RUN_TERMINAL,
    STOPPED,
    emit_status,
    errors_of,
    reseeded,
    run_progress,
    unrunnable,
)

log = logging.getLogger("atelier.studio")

MAX_REFERENCES = 8  # as many as a character keeps (production/projects.py)

JOB_ENDS = {events.COMPLETED, events.FAILED, events.CANCELLED}
STEP_LABEL = "studio_step"


@dataclass
class Outcome:
    """What one advance changed, for the run's events."""

    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, step: StepRow, status: str, **extra: Any) -> None:
        step.status = status
        self.steps.append({"step": step.name, "status": status, **extra})


class RunEngine:
    def __init__(
        self,
        database: Database,
        bus: EventBus,
        jobs: JobsService,
        media: MediaSteps,
        gates: GateKeeper,
        *,
        resync_interval: float,
    ) -> None:
        self.database = database
        self.bus = bus
        self.jobs = jobs
        self.media = media
        self.gates = gates
        self.resync_interval = resync_interval
        self._locks = KeyedLocks()
        self._dirty: set[str] = set()
        self._again: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._job_runs: dict[str, str] = {}
        self._active: set[str] = set()  # runs not yet finished, as last seen
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # Lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="studio-listen"),
            asyncio.create_task(self._loop(), name="studio-engine"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop waking runs, let advances in flight finish (a join, a submit) for up to
        ``grace`` seconds, then cancel what is left. Nothing is lost either way: the
        next start resumes every run from its tables."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def wake(self, run_id: str) -> None:
        self._active.add(run_id)
        self._dirty.add(run_id)
        self._wakeup.set()

    async def _listen(self) -> None:
        async with self.bus.subscribe() as subscription:
            while True:
                event = await subscription.queue.get()
                if subscription.lagged:  # missed some: the resync covers every run
                    subscription.lagged = False
                    self._wakeup.set()
                if event.type not in JOB_ENDS:
                    continue
                run_id = self._job_runs.get(event.job_id)
                if run_id is None and self._active:  # no active run: not one of ours
                    # Shielded: a stop never cuts a transaction in half.
                    run_id = await asyncio.shield(self._run_of_job(event.job_id))
                if run_id is not None:
                    self.wake(run_id)

    async def _run_of_job(self, job_id: str) -> str | None:
        async with self.database.transaction() as session:
            return await RunRepository(session).run_of_job(job_id)

    async def _active_ids(self) -> list[str]:
        async with self.database.transaction() as session:
            return await RunRepository(session).active_ids()

    async def _loop(self) -> None:
        # Not `while True`: on Python 3.11 a wait_for whose event is set as the task is
        # cancelled returns and swallows the cancel, so a stop right after a wake (a stop
        # just after start and resume) would wait on this loop forever.
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.resync_interval)
            except TimeoutError:
                try:
                    self._active = set(await asyncio.shield(self._active_ids()))
                    self._dirty.update(self._active)
                except Exception:  # the database may be restarting: try next round
                    log.exception("studio resync failed")
            self._wakeup.clear()
            dirty, self._dirty = self._dirty, set()
            for run_id in dirty:
                if self._stopping:
                    break
                if run_id in self._running:
                    self._again.add(run_id)
                else:
                    self._running[run_id] = asyncio.create_task(self._drive(run_id))

    async def resume(self) -> None:
        """Advance every active run soon (at start: runs resume where they were)."""
        async with self.database.transaction() as session:
            self._active = set(await RunRepository(session).active_ids())
        self._dirty.update(self._active)
        self._wakeup.set()

    async def resync_now(self) -> None:
        """Advance every active run once (at start, and from tests)."""
        async with self.database.transaction() as session:
            ids = await RunRepository(session).active_ids()
        for run_id in ids:
            await self.advance(run_id)

    async def _drive(self, run_id: str) -> None:
        try:
            while True:
                self._again.discard(run_id)
                try:
                    await self.advance(run_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("advancing run %s failed; the resync tries again", run_id)
                if run_id not in self._again or self._stopping:
                    return
        finally:
            self._running.pop(run_id, None)

    # The state machine

    async def advance(self, run_id: str) -> None:
        async with self._locks.hold(run_id):
            await self._advance(run_id)

    async def _advance(self, run_id: str) -> None:
        run, steps, jobs = await self._load(run_id)
        if run is None or run.status in RUN_TERMINAL:
            return
        outcome = Outcome()
        by_name = {step.name: step for step in steps}
        await self._follow_jobs(run, steps, jobs, outcome)
        if run.cancel_requested:
            await self._cancel(run, steps, jobs, outcome)
        else:
            progressed = True
            while progressed:  # a gate that passes at once readies the next steps
                progressed = False
                for step in steps:
                    if step.status == "pending" and all(
                        by_name[d].status == "completed" for d in step.depends
                    ):
                        await self._start(run, step, by_name, outcome)
                        # A passed gate readies what follows; a reroll readies its targets.
                        progressed = (
                            progressed
                            or step.status == "completed"
                            or (step.kind == "gate" and step.status == "pending")
                        )
            jobs = await self._jobs_of(steps)
        await self._settle(run, steps, jobs, outcome)

    async def _load(self, run_id: str) -> tuple[RunRow | None, list[StepRow], dict[str, JobRow]]:
        async with self.database.transaction() as session:
            runs = RunRepository(session)
            run = await runs.get(run_id)
            steps = await runs.steps(run_id) if run is not None else []
            jobs = await runs.jobs([s.job_id for s in steps if s.job_id])
        return run, steps, jobs

    async def _jobs_of(self, steps: list[StepRow]) -> dict[str, JobRow]:
        async with self.database.transaction() as session:
            return await RunRepository(session).jobs([s.job_id for s in steps if s.job_id])

    async def _follow_jobs(
        self, run: RunRow, steps: list[StepRow], jobs: dict[str, JobRow], outcome: Outcome
    ) -> None:
        for step in steps:
            if step.kind == "job" and step.status == "submitting":
                await self._find_submitted(step, jobs)
            if step.status == "running" and step.kind != "job":
                # A media step or gate interrupted by a restart: do it again.
                await self._set(step, ["running"], status="pending")
                step.status = "pending"
                continue
            job = jobs.get(step.job_id or "")
            if step.status != "running" or job is None:
                continue
            if job.status == "completed":
                await self._complete_job_step(run, step, job, outcome)
            elif job.status in ("failed", "cancelled"):
                error = job.error or {"type": job.status, "message": f"the job was {job.status}"}
                if await self._set(
                    step, ["running"], status=job.status, error=error, finished_at=utcnow()
                ):
                    outcome.step(step, job.status, job_id=job.id)

    async def _find_submitted(self, step: StepRow, jobs: dict[str, JobRow]) -> None:
        """A step left 'submitting' (a crash mid-submit): its job, or submit again."""
        async with self.database.transaction() as session:
            job = await RunRepository(session).job_labelled(STEP_LABEL, f"{step.id}:{step.tries}")
        if job is None:
            await self._set(step, ["submitting"], status="pending")
            step.status = "pending"
            return
        await self._set(
            step, ["submitting"], status="running", job_id=job.id, job_ids=[*step.job_ids, job.id]
        )
        step.status, step.job_id = "running", job.id
        jobs[job.id] = job

    async def _complete_job_step(
        self, run: RunRow, step: StepRow, job: JobRow, outcome: Outcome
    ) -> None:
        async with self.jobs.ledger.unit() as unit:
            outputs = (await unit.artifacts.for_jobs([job.id]))[job.id]
        wanted = step.spec.get("output")
        chosen = [a for a in outputs if a.kind == wanted] or outputs
        if not chosen:
            if await self._set(
                step,
                ["running"],
                status="failed",
                finished_at=utcnow(),
                error={"type": "no_output", "message": "the job made no file"},
            ):
                outcome.step(step, "failed")
            return
        await self._record_outputs(run, step, chosen)
        if await self._set(
            step,
            ["running"],
            status="completed",
            outputs=[a.id for a in chosen],
            error=None,
            finished_at=utcnow(),
        ):
            step.outputs = [a.id for a in chosen]
            outcome.step(step, "completed", job_id=job.id, outputs=step.outputs)

    async def _record_outputs(self, run: RunRow, step: StepRow, outputs: list[ArtifactRow]) -> None:
        """The gallery's rows for a step's outputs, each with its thumbnail."""
        record = step.spec.get("record") or {}
        characters = record.get("characters") or []
        for artifact in outputs:
            async with self.database.transaction() as session:
                if await OutputRepository(session).get(artifact.id) is not None:
                    continue
            try:
                thumb = await self.media.thumbnail(artifact)
            except AtelierError:
                thumb = None
            async with self.jobs.ledger.unit() as unit:
                if thumb is not None:
                    await unit.artifacts.add(thumb)
                await OutputRepository(unit.session).add(
                    StudioOutputRow(
                        artifact_id=artifact.id,
                        owner=run.owner,
                        project_id=run.project_id,
                        character_id=characters[0] if characters else None,
                        run_id=run.id,
                        step=step.name,
                        kind=artifact.kind,
                        thumbnail_id=thumb.id if thumb else None,
                        published=False,
                        created_at=utcnow(),
                    )
                )

    async def _start(
        self, run: RunRow, step: StepRow, by_name: dict[str, StepRow], outcome: Outcome
    ) -> None:
        if step.kind == "job":
            await self._submit(run, step, by_name, outcome)
        elif step.kind == "join":
            await self._join(run, step, by_name, outcome)
        elif step.kind == "gate":
            await self._gate(run, step, by_name, outcome)

    async def _submit(
        self, run: RunRow, step: StepRow, by_name: dict[str, StepRow], outcome: Outcome
    ) -> None:
        tries = step.tries + 1
        if not await self._set(
            step,
            ["pending"],
            status="submitting",
            tries=tries,
            started_at=utcnow(),
            finished_at=None,
            error=None,
        ):
            return
        step.tries = tries
        spec = step.spec
        record = spec.get("record") or {}
        labels = {
            "run": run.id,
            "step": step.name,
            "pipeline": run.pipeline,
            STEP_LABEL: f"{step.id}:{tries}",
        }
        if run.project_id:
            labels["project"] = run.project_id
        if record.get("characters"):
            labels["character"] = record["characters"][0]
        job = None
        error: AtelierError | None = None
        for choice in (spec, spec.get("fallback")):
            if choice is None:
                break
            params = dict(choice["params"])
            for param, (source, index) in (choice.get("inputs") or {}).items():
                params[param] = by_name[source].outputs[index]
            request = JobCreate(
                workflow=choice["workflow"],
                params=params,
                labels=labels,
                metadata={"studio": {**record, "workflow": choice["workflow"], "try": tries}},
            )
            try:
                job = await self.jobs.submit(request, owner=run.owner, base_url="")
                break
            except (CapabilityMissing, ValidationFailed) as exc:
                error = exc
                if not unrunnable(exc):
                    break
            except AtelierError as exc:
                error = exc
                break
        if job is None:
            assert error is not None
            failure = {"type": error.slug, "message": error.detail, **errors_of(error)}
            await self._set(
                step, ["submitting"], status="failed", error=failure, finished_at=utcnow()
            )
            outcome.step(step, "failed", error=failure)
            return
        self._job_runs[job.id] = run.id
        await self._set(
            step, ["submitting"], status="running", job_id=job.id, job_ids=[*step.job_ids, job.id]
        )
        step.job_id = job.id
        outcome.step(step, "running", job_id=job.id, workflow=job.workflow, tries=tries)

    async def _join(
        self, run: RunRow, step: StepRow, by_name: dict[str, StepRow], outcome: Outcome
    ) -> None:
        if not await self._set(
            step,
            ["pending"],
            status="running",
            tries=step.tries + 1,
            started_at=utcnow(),
            finished_at=None,
            error=None,
        ):
            return
        step.tries += 1
        async with self.jobs.ledger.unit() as unit:
            segments = [
                await unit.artifacts.get(by_name[name].outputs[0]) for name in step.spec["segments"]
            ]
        try:
            if any(s is None for s in segments):
                raise AtelierError("a segment's artifact is gone")
            joined = await self.media.join(
                [s for s in segments if s is not None],
                fps=int(step.spec["fps"]),
                crf=int(step.spec["crf"]),
                owner=run.owner,
            )
        except (AtelierError, OSError, ValueError) as exc:
            failure = {"type": "join_failed", "message": str(exc)}
            await self._set(step, ["running"], status="failed", error=failure, finished_at=utcnow())
            outcome.step(step, "failed", error=failure)
            return
        async with self.jobs.ledger.unit() as unit:
            await unit.artifacts.add(joined)
        await self._record_outputs(run, step, [joined])
        await self._set(
            step, ["running"], status="completed", outputs=[joined.id], finished_at=utcnow()
        )
        step.outputs = [joined.id]
        outcome.step(step, "completed", outputs=step.outputs)

    async def _gate(
        self, run: RunRow, step: StepRow, by_name: dict[str, StepRow], outcome: Outcome
    ) -> None:
        spec = step.spec
        async with self.jobs.ledger.unit() as unit:
            files: dict[str, list[ArtifactRow]] = {}
            for name in {*spec["targets"], *spec.get("segments", [])}:
                rows = [await unit.artifacts.get(a) for a in by_name[name].outputs]
                files[name] = [r for r in rows if r is not None]
            reference = (
                await unit.artifacts.get(spec["reference"]) if spec.get("reference") else None
            )
        verdicts = await self.gates.evaluate(spec, files, reference)
        history = [*step.scores, *[v.as_dict(step.tries + 1) for v in verdicts]]
        failing = [v.target for v in verdicts if not v.passed]
        if spec.get("manual"):
            status = "awaiting_review"
        elif not failing:
            status = "completed"
        elif all(
            by_name[t].kind == "job" and by_name[t].tries <= int(spec["max_rerolls"])
            for t in failing
        ):
            status = "pending"  # reroll the failing targets, then score again
            for target in failing:
                await self._reroll(by_name[target], outcome)
        else:
            status = "awaiting_review"
        changed = await self._set(
            step,
            ["pending"],
            status=status,
            scores=history,
            tries=step.tries + 1,
            finished_at=utcnow() if status == "completed" else None,
        )
        if changed and status == "completed":
            await self.adopt_references(step, by_name)
        if changed:
            step.tries += 1
            step.scores = history
            outcome.step(step, status, scores=[v.as_dict(step.tries) for v in verdicts])

    async def adopt_references(self, gate: StepRow, by_name: dict[str, StepRow]) -> None:
        """A passed (or approved) character sheet becomes the character's reference: its
        poses are added after the references it had (the first stays first)."""
        character_id = gate.spec.get("adopt_references")
        if not character_id:
            return
        outputs = [a for target in gate.spec["targets"] for a in by_name[target].outputs]
        async with self.jobs.ledger.unit() as unit:
            character = await unit.session.get(CharacterRow, character_id)
            if character is None:
                return
            kept = list(character.references)
            for artifact_id in outputs:
                source = await unit.artifacts.get(artifact_id)
                if source is None or len(kept) >= MAX_REFERENCES:
                    continue
                copy = copy_for_job(source, "", source.owner)
                copy.job_id = None  # the character's own copy: deleting the job keeps it
                await unit.artifacts.add(copy)
                kept.append(copy.id)
            character.references = kept
            character.updated_at = utcnow()

    async def _reroll(self, step: StepRow, outcome: Outcome, *, reseed: bool = True) -> None:
        spec = reseeded(step.spec) if reseed else step.spec
        if await self._set(
            step,
            ["completed", "failed", "cancelled"],
            status="pending",
            spec=spec,
            outputs=[],
            error=None,
            finished_at=None,
        ):
            step.spec, step.outputs = spec, []
            outcome.step(step, "pending", reroll=True, seed=spec["params"].get("seed"))

    async def _cancel(
        self, run: RunRow, steps: list[StepRow], jobs: dict[str, JobRow], outcome: Outcome
    ) -> None:
        for step in steps:
            job = jobs.get(step.job_id or "")
            if step.status == "running" and job is not None and job.status in ("queued", "running"):
                # A job that finished meanwhile is collected by the next advance.
                with contextlib.suppress(JobStateConflict):
                    await self.jobs.cancel(job.id, owner=None, base_url="")
                continue
            unstarted = step.status in ("pending", "awaiting_review")
            if (unstarted or (step.status == "running" and step.kind != "job")) and await self._set(
                step, [step.status], status="cancelled", finished_at=utcnow()
            ):
                outcome.step(step, "cancelled")

    async def _settle(
        self, run: RunRow, steps: list[StepRow], jobs: dict[str, JobRow], outcome: Outcome
    ) -> None:
        by_name = {s.name: s for s in steps}
        statuses = [s.status for s in steps]
        startable = any(
            s.status == "pending" and all(by_name[d].status == "completed" for d in s.depends)
            for s in steps
        )
        busy = any(s in ACTIVE for s in statuses) or (startable and not run.cancel_requested)
        if all(s == "completed" for s in statuses):
            status = "completed"
        elif busy:
            status = "running"
        elif run.cancel_requested:
            status = "cancelled"
        elif "awaiting_review" in statuses:
            status = "awaiting_review"
        elif any(s in STOPPED for s in statuses):
            status = "failed"
        else:
            status = "running"
        if status in RUN_TERMINAL:
            self._active.discard(run.id)
            self._job_runs = {j: r for j, r in self._job_runs.items() if r != run.id}
        progress = run_progress(steps, jobs)
        error = None
        if status == "failed":
            failed = [s for s in steps if s.status in STOPPED]
            error = {
                "type": "step_failed",
                "steps": [s.name for s in failed],
                "message": f"{len(failed)} step(s) did not finish",
            }
        if status == run.status and abs(progress - run.progress) < 1e-6 and not outcome.steps:
            return
        async with self.jobs.ledger.unit() as unit:
            await RunRepository(unit.session).set(
                run.id,
                status=status,
                progress=progress,
                error=error,
                finished_at=utcnow() if status in RUN_TERMINAL else None,
            )
            for change in outcome.steps:
                await unit.emit(run.id, "run.step", change)
            if status != run.status or outcome.steps:
                await emit_status(unit, run.id, status, progress, steps)

    async def _set(self, step: StepRow, allowed: list[str], **values: Any) -> bool:
        async with self.database.transaction() as session:
            return await RunRepository(session).set_step(step.id, allowed=allowed, **values)

    # Changes a person asks for (under the run's lock, then the engine moves on)

    async def act(self, run_id: str, change: Callable[[], Awaitable[None]]) -> None:
        async with self._locks.hold(run_id):
            await change()
        self.wake(run_id)
