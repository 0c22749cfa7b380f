"""Pipeline runs: start one, read it, and the changes a person asks for."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from atelier.db.database import Database
from atelier.db.studio import ProjectRepository, RunRepository
from atelier.db.studio_tables import CharacterRow, RunRow, StepRow
from atelier.db.tables import ArtifactRow, JobRow, utcnow
from atelier.errors import (
    PipelineNotFound,
    ProjectArchived,
    ProjectNotFound,
    RunNotFound,
    RunStateConflict,
    ValidationFailed,
)
from atelier.jobs.service import artifact_view
from atelier.jobs.views import ArtifactView
from atelier.production.engine import RunEngine
from atelier.production.pipelines import PIPELINES, Context, PipelineParams
from atelier.production.presets import MAX_SEGMENT_SECONDS
from atelier.production.projects import decode_cursor, encode_cursor
from atelier.production.run_state import ACTIVE, RUN_TERMINAL, STOPPED, emit_status, reseeded
from atelier.production.run_views import (
    GenerateRequest,
    PipelineList,
    PipelineView,
    RunPage,
    RunView,
    SegmentStatus,
    StepView,
)


def _invalid(exc: ValidationError, prefix: str) -> ValidationFailed:
    errors = [
        {"field": prefix + ".".join(str(p) for p in e["loc"]), "reason": e["msg"]}
        for e in exc.errors()
    ]
    return ValidationFailed(f"{errors[0]['field']}: {errors[0]['reason']}", errors=errors)


class RunsService:
    def __init__(
        self,
        database: Database,
        engine: RunEngine,
        backends_up: Callable[[], int],
        sign_url: Callable[[str, str], str] | None,
    ) -> None:
        self.database = database
        self.engine = engine
        self.backends_up = backends_up  # for the segments' ETA: backends, or live workers
        self.sign_url = sign_url

    def pipelines(self) -> PipelineList:
        return PipelineList(
            items=[
                PipelineView(
                    name=p.name, description=p.description, parameters=p.params.model_json_schema()
                )
                for p in PIPELINES.values()
            ]
        )

    async def create(
        self,
        name: str,
        params: dict[str, Any],
        *,
        owner: str | None,
        creator: str | None,
        base_url: str,
    ) -> RunView:
        """``owner`` is whose projects the caller may use (None: any), ``creator`` whose
        the run is; a run of a project belongs to the project's owner."""
        pipeline = PIPELINES.get(name)
        if pipeline is None:
            raise PipelineNotFound(f"no pipeline {name!r} (GET /api/v1/pipelines lists them)")
        try:
            parsed: PipelineParams = pipeline.params.model_validate(params)
        except ValidationError as exc:
            raise _invalid(exc, "params.") from exc
        context = await self._context(parsed, name, owner=owner)
        plans = pipeline.build(context)
        now = utcnow()
        run_owner = context.project.owner if context.project is not None else creator
        run = RunRow(
            id=str(uuid.uuid4()),
            owner=run_owner,
            project_id=parsed.project,
            pipeline=name,
            params=parsed.model_dump(mode="json"),
            status="running",
            cancel_requested=False,
            progress=0.0,
            error=None,
            created_at=now,
            updated_at=now,
            finished_at=None,
        )
        steps = [
            StepRow(
                id=str(uuid.uuid4()),
                run_id=run.id,
                name=plan.name,
                position=index,
                kind=plan.kind,
                group=plan.group,
                spec=plan.spec,
                depends=plan.depends,
                status="pending",
                tries=0,
                job_id=None,
                job_ids=[],
                outputs=[],
                scores=[],
                error=None,
                started_at=None,
                finished_at=None,
                updated_at=now,
            )
            for index, plan in enumerate(plans)
        ]
        async with self.engine.jobs.ledger.unit() as unit:
            await RunRepository(unit.session).add(run, steps)
            await emit_status(unit, run.id, "running", 0.0, steps)
        self.engine.wake(run.id)
        return await self.get(run.id, owner=None, base_url=base_url)

    async def _context(self, params: PipelineParams, name: str, *, owner: str | None) -> Context:
        if params.project is None:
            if params.character is not None:
                raise ValidationFailed(
                    "params.character: a character belongs to a project; give params.project",
                    errors=[{"field": "params.character", "reason": "needs params.project"}],
                )
            return Context(params, pipeline=name)
        async with self.database.transaction() as session:
            projects = ProjectRepository(session)
            project = await projects.get(params.project, owner=owner)
            if project is None:
                raise ProjectNotFound(f"no project {params.project!r}")
            bible = await projects.bible(project.id)
            character: CharacterRow | None = None
            if params.character is not None:
                character = await projects.character(project.id, params.character)
                if character is None:
                    raise ValidationFailed(
                        f"params.character: no character {params.character!r} in the project",
                        errors=[{"field": "params.character", "reason": "no such character"}],
                    )
        if project.status == "archived":
            raise ProjectArchived(f"project {project.id} is archived")
        return Context(params, project=project, bible=bible, character=character, pipeline=name)

    async def generate(
        self,
        project_id: str,
        body: GenerateRequest,
        *,
        owner: str | None,
        creator: str | None,
        base_url: str,
    ) -> RunView:
        """A still for duration 0, one shot up to MAX_SEGMENT_SECONDS, else segments."""
        params: dict[str, Any] = {
            "project": project_id,
            "character": body.character,
            "prompt": ", ".join(p for p in (body.prompt, body.style) if p.strip()),
            "negative_prompt": body.negative_prompt,
            "scene_type": body.scene_type,
            "quality": body.quality,
            "width": body.width,
            "height": body.height,
            "steps": body.steps,
            "seed": body.seed,
            "review": body.review,
        }
        if body.duration == 0:
            name = "still"
        elif body.segments == "auto" and body.duration <= MAX_SEGMENT_SECONDS:
            name = "full_video"
            params.update(duration=body.duration, fps=body.fps)
        else:
            name = "long_video"
            params.update(duration=body.duration, fps=body.fps, segments=body.segments)
        params = {k: v for k, v in params.items() if v is not None}
        async with self.database.transaction() as session:
            if await ProjectRepository(session).get(project_id, owner=owner) is None:
                raise ProjectNotFound(f"no project {project_id!r}")
        return await self.create(name, params, owner=owner, creator=creator, base_url=base_url)

    async def row(self, run_id: str, *, owner: str | None) -> RunRow:
        async with self.database.transaction() as session:
            run = await RunRepository(session).get(run_id, owner=owner)
        if run is None:
            raise RunNotFound(f"no run {run_id!r}")
        return run

    async def get(self, run_id: str, *, owner: str | None, base_url: str) -> RunView:
        run = await self.row(run_id, owner=owner)
        return (await self._views([run], base_url))[0]

    async def find(
        self,
        *,
        owner: str | None,
        project_id: str | None,
        statuses: list[str],
        cursor: str | None,
        limit: int,
        base_url: str,
    ) -> RunPage:
        before = decode_cursor(cursor) if cursor else None
        async with self.database.transaction() as session:
            rows = await RunRepository(session).find(
                owner=owner,
                project_id=project_id,
                statuses=statuses,
                before=before,
                limit=limit + 1,
            )
        page = rows[:limit]
        more = len(rows) > limit
        return RunPage(
            items=await self._views(page, base_url),
            next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
        )

    # Changes a person asks for

    async def cancel(self, run_id: str, *, owner: str | None, base_url: str) -> RunView:
        run = await self.row(run_id, owner=owner)
        if run.status in ("completed", "failed"):
            raise RunStateConflict(f"run {run_id} is already {run.status}")
        if run.status != "cancelled":
            async with self.database.transaction() as session:
                await RunRepository(session).set(run_id, cancel_requested=True)
            await self.engine.advance(run_id)  # cancel its jobs now, not at the next event
        return await self.get(run_id, owner=owner, base_url=base_url)

    async def retry(self, run_id: str, *, owner: str | None, base_url: str) -> RunView:
        """Run the failed, cancelled and rejected steps again; finished steps stay."""
        run = await self.row(run_id, owner=owner)

        async def change() -> None:
            async with self.database.transaction() as session:
                runs = RunRepository(session)
                current = await runs.get(run_id)
                if current is None or current.status not in ("failed", "cancelled"):
                    raise RunStateConflict(
                        f"run {run_id} is {run.status}; only failed or cancelled runs retry"
                    )
                steps = await runs.steps(run_id)
                by_name = {s.name: s for s in steps}
                for step in steps:
                    if step.status in STOPPED:
                        if step.status == "rejected":
                            for target in step.spec.get("targets", []):
                                await self._reset(runs, by_name[target], reseed=True)
                        await self._reset(runs, step, reseed=False)
                await runs.set(
                    run_id, status="running", cancel_requested=False, error=None, finished_at=None
                )

        await self.engine.act(run_id, change)
        return await self.get(run_id, owner=owner, base_url=base_url)

    async def review(
        self,
        run_id: str,
        step: str | None,
        *,
        approve: bool,
        owner: str | None,
        comment: str,
        base_url: str,
    ) -> RunView:
        await self.row(run_id, owner=owner)
        decided: list[str] = []

        async def change() -> None:
            async with self.engine.jobs.ledger.unit() as unit:
                runs = RunRepository(unit.session)
                waiting = [
                    s
                    for s in await runs.steps(run_id)
                    if s.status == "awaiting_review" and (step is None or s.name == step)
                ]
                if not waiting:
                    raise RunStateConflict(
                        f"run {run_id} has no gate {step!r} awaiting review"
                        if step
                        else f"run {run_id} has no gate awaiting review"
                    )
                decision = "approved" if approve else "rejected"
                decided.extend(gate.name for gate in waiting)
                for gate in waiting:
                    scores = [
                        *gate.scores,
                        {
                            "review": decision,
                            "by": owner,
                            "comment": comment,
                            "at": utcnow().isoformat(),
                        },
                    ]
                    await runs.set_step(
                        gate.id,
                        allowed=["awaiting_review"],
                        status="completed" if approve else "rejected",
                        scores=scores,
                        finished_at=utcnow(),
                    )
                    await unit.emit(
                        run_id, "run.step", {"step": gate.name, "status": decision, "by": owner}
                    )
                await runs.set(run_id, status="running")

        async def approve_and_adopt() -> None:
            await change()
            if not approve:
                return
            async with self.database.transaction() as session:
                steps = await RunRepository(session).steps(run_id)
            by_name = {s.name: s for s in steps}
            for name in decided:
                await self.engine.adopt_references(by_name[name], by_name)

        await self.engine.act(run_id, approve_and_adopt)
        return await self.get(run_id, owner=owner, base_url=base_url)

    async def rerender(
        self, run_id: str, step_name: str, *, reseed: bool, owner: str | None, base_url: str
    ) -> RunView:
        """Render one job step again (a segment, say) and redo whatever uses it."""
        await self.row(run_id, owner=owner)

        async def change() -> None:
            async with self.database.transaction() as session:
                runs = RunRepository(session)
                steps = await runs.steps(run_id)
                by_name = {s.name: s for s in steps}
                target = by_name.get(step_name)
                if target is None or target.kind != "job":
                    raise ValidationFailed(
                        f"step: the run has no job step {step_name!r}",
                        errors=[{"field": "step", "reason": "no such job step"}],
                    )
                if any(s.status in ACTIVE for s in steps) or target.status == "pending":
                    raise RunStateConflict(f"run {run_id} is busy; rerender when it stops")
                await self._reset(runs, target, reseed=reseed)
                for dependent in _dependents(steps, step_name):
                    await self._reset(runs, by_name[dependent], reseed=False)
                await runs.set(
                    run_id, status="running", cancel_requested=False, error=None, finished_at=None
                )

        await self.engine.act(run_id, change)
        return await self.get(run_id, owner=owner, base_url=base_url)

    async def _reset(self, runs: RunRepository, step: StepRow, *, reseed: bool) -> None:
        spec = reseeded(step.spec) if reseed and step.kind == "job" else step.spec
        await runs.set_step(
            step.id, status="pending", spec=spec, outputs=[], error=None, finished_at=None
        )

    # Views

    async def _views(self, runs: list[RunRow], base_url: str) -> list[RunView]:
        async with self.engine.jobs.ledger.unit() as unit:
            repo = RunRepository(unit.session)
            steps = {run.id: await repo.steps(run.id) for run in runs}
            every = [s for group in steps.values() for s in group]
            jobs = await repo.jobs([s.job_id for s in every if s.job_id])
            ids = {a for s in every for a in s.outputs}
            artifacts: dict[str, ArtifactRow] = {}
            for artifact_id in ids:
                found = await unit.artifacts.get(artifact_id)
                if found is not None:
                    artifacts[artifact_id] = found
        sign = self.sign_url

        def view(artifact_id: str) -> list[ArtifactView]:
            found = artifacts.get(artifact_id)
            return [artifact_view(found, base_url, sign)] if found else []

        return [_run_view(run, steps[run.id], jobs, view, self.backends_up()) for run in runs]


def _dependents(steps: list[StepRow], name: str) -> list[str]:
    found: list[str] = []
    frontier = {name}
    while frontier:
        after = [s.name for s in steps if frontier & set(s.depends) and s.name not in found]
        found.extend(after)
        frontier = set(after)
    return found


def _run_view(
    run: RunRow,
    steps: list[StepRow],
    jobs: dict[str, JobRow],
    view: Callable[[str], list[ArtifactView]],
    parallel: int,
) -> RunView:
    step_views = []
    for step in steps:
        job = jobs.get(step.job_id or "")
        progress = 1.0 if step.status == "completed" else (job.progress if job else 0.0)
        step_views.append(
            StepView(
                name=step.name,
                kind=step.kind,
                group=step.group,
                status=step.status,
                depends=step.depends,
                tries=step.tries,
                job_id=step.job_id,
                jobs=step.job_ids,
                workflow=job.workflow if job else step.spec.get("workflow"),
                progress=progress,
                backend=job.backend if job else None,
                outputs=[v for a in step.outputs for v in view(a)],
                scores=step.scores,
                error=step.error,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        )
    sinks = _sinks(steps)
    return RunView(
        id=run.id,
        pipeline=run.pipeline,
        project_id=run.project_id,
        status=run.status,
        progress=run.progress,
        params=run.params,
        error=run.error,
        steps=step_views,
        segments=_segments(steps, jobs, parallel),
        outputs=[v for s in steps if s.name in sinks for a in s.outputs for v in view(a)],
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


def _sinks(steps: list[StepRow]) -> set[str]:
    """The steps whose files are the run's result: no other step builds on them."""
    by_name = {s.name: s for s in steps}

    def through_gates(name: str) -> set[str]:
        step = by_name[name]
        if step.kind != "gate":
            return {name}
        return {n for d in step.depends for n in through_gates(d)}

    used = {n for s in steps if s.kind != "gate" for d in s.depends for n in through_gates(d)}
    return {s.name for s in steps if s.kind != "gate" and s.name not in used}


def _segments(steps: list[StepRow], jobs: dict[str, JobRow], parallel: int) -> SegmentStatus | None:
    segments = [s for s in steps if s.group == "segment"]
    if not segments:
        return None
    durations = []
    for step in segments:
        job = jobs.get(step.job_id or "")
        if step.status == "completed" and job and job.started_at and job.finished_at:
            durations.append((job.finished_at - job.started_at).total_seconds())
    completed = sum(s.status == "completed" for s in segments)
    failed = sum(s.status in STOPPED for s in segments)
    processing = sum(s.status in ACTIVE for s in segments)
    pending = len(segments) - completed - failed - processing
    mean = sum(durations) / len(durations) if durations else None
    eta = None
    if mean is not None:
        remaining = processing + pending
        eta = round(mean * math.ceil(remaining / max(1, parallel)), 3)
    return SegmentStatus(
        total=len(segments),
        completed=completed,
        failed=failed,
        processing=processing,
        pending=pending,
        seconds_per_segment=round(mean, 3) if mean is not None else None,
        eta_seconds=eta,
        estimated_completion=utcnow() + timedelta(seconds=eta) if eta is not None else None,
    )


__all__ = ["RUN_TERMINAL", "RunsService"]
