"""The jobs service: everything the API does with jobs, with no HTTP in sight."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from pydantic_core import to_json

from atelier import events
from atelier.db.tables import ArtifactRow, AttemptRow, JobRow, utcnow
from atelier.db.unit import UnitOfWork
from atelier.dispatch.backends import BackendPool
from atelier.dispatch.base import Dispatcher
from atelier.dispatch.ledger import JobLedger
from atelier.dispatch.progress import checkpoint_of
from atelier.errors import ArtifactNotFound, InvalidRequest, JobNotFound, JobStateConflict
from atelier.job_state import TERMINAL, JobStatus
from atelier.jobs.readmodel import JobReadModel, StatusDocument
from atelier.jobs.views import (
    ArtifactView,
    AttemptView,
    JobCreate,
    JobError,
    JobPage,
    JobView,
    OutputPage,
    OutputView,
)
from atelier.settings import Settings
from atelier.storage.base import ArtifactStore
from atelier.workflows.jobs import WorkflowJobs


class SubmitExtension(Protocol):
    """Runs with every submit: ``check`` before the transaction, ``store`` inside it."""

    async def check(self, request: JobCreate, owner: str | None) -> None: ...

    async def store(self, unit: UnitOfWork, job: JobRow, request: JobCreate) -> None: ...


class JobsService:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: JobLedger,
        dispatcher: Dispatcher,
        pool: BackendPool,
        store: ArtifactStore,
        sign_url: Callable[[str, str], str] | None = None,
        submit_extensions: Sequence[SubmitExtension] = (),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.pool = pool
        self.store = store
        # Signs artifact links (base_url, artifact_id) -> URL; None: plain links.
        self.sign_url = sign_url
        # Run with every submit, such as per-job webhooks.
        self.submit_extensions = tuple(submit_extensions)
        # Workflow templates, media inputs and capability checks (workflows/jobs.py).
        self.workflows = WorkflowJobs(settings, ledger=ledger, pool=pool, store=store)
        # Status documents of recently read jobs; every committed change drops its job's.
        self.read_model = JobReadModel(size=settings.job_cache_size, ttl=settings.job_cache_seconds)
        ledger.bus.on_jobs_changed(self.read_model.forget)

    async def submit(
        self, request: JobCreate, *, owner: str | None, base_url: str, job_id: str | None = None
    ) -> JobView:
        """Queue a job; under ``job_id`` if given (an Idempotency-Key claimed it)."""
        job_id = job_id or str(uuid.uuid4())
        prepared = await self.workflows.prepare(
            graph=request.graph,
            workflow=request.workflow,
            params=request.params,
            preset=request.preset,
            owner=owner,
            job_id=job_id,
        )
        graph = prepared.graph
        for extension in self.submit_extensions:
            await extension.check(request, owner)
        now = utcnow()
        job = JobRow(
            id=job_id,
            status=JobStatus.QUEUED,
            priority=request.priority,
            graph=graph,
            user_metadata=request.metadata,
            labels=request.labels,
            owner=owner,
            checkpoint=checkpoint_of(graph),
            vram_required=_vram_bytes(request.requirements.vram_gb),
            attempt=0,
            cancel_requested=False,
            progress=0.0,
            created_at=now,
            queued_at=now,
            updated_at=now,
            workflow=prepared.workflow,
            workflow_version=prepared.version,
            params=prepared.params,
        )
        async with self.ledger.unit() as unit:
            await unit.jobs.add(job)
            for artifact in prepared.inputs:
                await unit.artifacts.add(artifact)
            await unit.emit(
                job.id, events.QUEUED, {"status": JobStatus.QUEUED.value, "priority": job.priority}
            )
            for extension in self.submit_extensions:
                await extension.store(unit, job, request)
            # A new job has no attempts or outputs yet: no need to ask the database.
            view = await self._view(unit, job, base_url, attempts=[], outputs=[])
        self.dispatcher.wake()
        return view

    async def get(self, job_id: str, *, owner: str | None, base_url: str) -> JobView:
        """A job by its id, or by the ComfyUI prompt id of any of its attempts."""
        async with self.ledger.unit() as unit:
            job = await unit.jobs.get(job_id, owner=owner)
            if job is None:
                job = await unit.jobs.by_attempt_id(job_id, owner=owner)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            return await self._view(unit, job, base_url)

    async def status(self, job_id: str, *, owner: str | None, base_url: str) -> StatusDocument:
        """The job as JSON (a ``JobView``), from the read model when it holds it."""

        async def load(job_ids: list[str]) -> dict[str, StatusDocument]:
            return await self._documents(job_ids, base_url)

        document = await self.read_model.read(job_id, base_url, load)
        if owner is not None and document.owner != owner:
            raise JobNotFound(f"no job {job_id!r}")
        return document

    async def _documents(self, job_ids: list[str], base_url: str) -> dict[str, StatusDocument]:
        """The status documents of these jobs (those that exist), read in one transaction."""
        async with self.ledger.unit() as unit:
            jobs = await unit.jobs.get_many(job_ids)
            found = [job.id for job in jobs]
            attempts = await unit.jobs.attempts_for(found)
            outputs = await unit.artifacts.for_jobs(found)
            positions = await unit.jobs.queue_positions(
                [job for job in jobs if job.status == JobStatus.QUEUED]
            )
        documents = {}
        for job in jobs:
            view = job_view(
                job,
                attempts[job.id],
                outputs[job.id],
                positions.get(job.id),
                base_url,
                self.sign_url,
            )
            documents[job.id] = StatusDocument(
                to_json(view), job.owner, view.status == JobStatus.QUEUED
            )
        return documents

    async def find(
        self,
        *,
        owner: str | None,
        base_url: str,
        statuses: list[str],
        labels: dict[str, str],
        cursor: str | None,
        limit: int,
    ) -> JobPage:
        before = _decode_cursor(cursor) if cursor else None
        async with self.ledger.unit() as unit:
            rows = await unit.jobs.find(
                statuses=statuses, labels=labels, owner=owner, before=before, limit=limit + 1
            )
            page, more = rows[:limit], len(rows) > limit
            attempts = await unit.jobs.attempts_for([j.id for j in page])
            outputs = await unit.artifacts.for_jobs([j.id for j in page])
            positions = await unit.jobs.queue_positions(
                [j for j in page if j.status == JobStatus.QUEUED]
            )
            items = [
                job_view(
                    j, attempts[j.id], outputs[j.id], positions.get(j.id), base_url, self.sign_url
                )
                for j in page
            ]
        next_cursor = _encode_cursor(page[-1]) if more and page else None
        return JobPage(items=items, next_cursor=next_cursor)

    async def cancel(self, job_id: str, *, owner: str | None, base_url: str) -> JobView:
        if await self.ledger.request_cancel(job_id, owner=owner):
            self.dispatcher.request_cancel(job_id)  # stop it here, if it runs here
        return await self.get(job_id, owner=owner, base_url=base_url)

    async def retry(self, job_id: str, *, owner: str | None, base_url: str) -> JobView:
        await self.ledger.retry(job_id, owner=owner)
        self.dispatcher.wake()
        return await self.get(job_id, owner=owner, base_url=base_url)

    async def counts(self) -> dict[str, int]:
        """Every job, counted by status."""
        async with self.ledger.unit() as unit:
            return await unit.jobs.count_by_status()

    async def delete(self, job_id: str, *, owner: str | None) -> None:
        async with self.ledger.unit() as unit:
            job = await unit.jobs.get(job_id, owner=owner)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            if job.status not in TERMINAL:
                raise JobStateConflict(
                    f"job {job_id} is {job.status}; cancel it before deleting it"
                )
            unused = await unit.artifacts.delete_for_job(job_id)
            await unit.jobs.delete(job_id)
        for key in unused:
            await self.store.delete(key)

    async def wait(
        self, job_id: str, timeout: float, *, owner: str | None, base_url: str
    ) -> JobView:
        """The job once it is terminal, or as it is after ``timeout`` seconds."""
        async with self.ledger.bus.subscribe(job_id, kind="wait") as subscription:
            view = await self.get(job_id, owner=owner, base_url=base_url)
            deadline = asyncio.get_running_loop().time() + timeout
            while view.status not in TERMINAL:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                # Events of this process wake it at once; another process (a second
                # server on the same database) may run the job, so look again each
                # second too.
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), min(remaining, 1.0))
                except TimeoutError:
                    view = await self.get(job_id, owner=owner, base_url=base_url)
                    continue
                if event.type in TERMINAL or subscription.lagged:
                    view = await self.get(job_id, owner=owner, base_url=base_url)
        return view

    async def artifact(self, artifact_id: str, *, owner: str | None) -> ArtifactRow:
        async with self.ledger.unit() as unit:
            artifact = await unit.artifacts.get(artifact_id)
        if artifact is None or (owner is not None and artifact.owner != owner):
            raise ArtifactNotFound(f"no artifact {artifact_id!r}")
        return artifact

    async def outputs(
        self,
        *,
        owner: str | None,
        base_url: str,
        workflow: str | None,
        kind: str | None,
        cursor: str | None,
        limit: int,
    ) -> OutputPage:
        """Finished work, newest first: every output of the jobs the caller may see."""
        before = _decode_cursor(cursor) if cursor else None
        async with self.ledger.unit() as unit:
            rows = await unit.artifacts.outputs(
                owner=owner, workflow=workflow, kind=kind, before=before, limit=limit + 1
            )
        page, more = rows[:limit], len(rows) > limit
        items = [
            OutputView(
                **artifact_view(artifact, base_url, self.sign_url).model_dump(), workflow=name
            )
            for artifact, name in page
        ]
        next_cursor = _encode_cursor(page[-1][0]) if more and page else None
        return OutputPage(items=items, next_cursor=next_cursor)

    async def _view(
        self,
        unit: UnitOfWork,
        job: JobRow,
        base_url: str,
        attempts: list[AttemptRow] | None = None,
        outputs: list[ArtifactRow] | None = None,
    ) -> JobView:
        if attempts is None:
            attempts = await unit.jobs.attempts(job.id)
        if outputs is None:
            outputs = (await unit.artifacts.for_jobs([job.id]))[job.id]
        position = await unit.jobs.queue_position(job) if job.status == JobStatus.QUEUED else None
        return job_view(job, attempts, outputs, position, base_url, self.sign_url)


def job_view(
    job: JobRow,
    attempts: list[AttemptRow],
    outputs: list[ArtifactRow],
    queue_position: int | None,
    base_url: str,
    sign_url: Callable[[str, str], str] | None = None,
) -> JobView:
    return JobView(
        id=job.id,
        status=job.status,
        priority=job.priority,
        progress=job.progress,
        current_node=job.current_node,
        current_node_type=job.current_node_type,
        step=job.step,
        max_steps=job.max_steps,
        stage=job.stage,
        eta_seconds=job.eta_seconds,
        queue_position=queue_position,
        backend=job.backend,
        attempt=job.attempt,
        attempts=[
            AttemptView(
                number=a.number,
                prompt_id=a.id,
                backend=a.backend,
                status=a.status,
                started_at=a.started_at,
                finished_at=a.finished_at,
                error=JobError.model_validate(a.error) if a.error else None,
            )
            for a in attempts
        ],
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        queue_seconds=_seconds(job.created_at, job.started_at),
        execution_seconds=_seconds(job.started_at, job.finished_at),
        error=JobError.model_validate(job.error) if job.error else None,
        outputs=[artifact_view(a, base_url, sign_url) for a in outputs],
        metadata=job.user_metadata or {},
        labels={k: str(v) for k, v in (job.labels or {}).items()},
        workflow=job.workflow,
        workflow_version=job.workflow_version,
        params=job.params,
    )


def artifact_view(
    artifact: ArtifactRow, base_url: str, sign_url: Callable[[str, str], str] | None = None
) -> ArtifactView:
    return ArtifactView(
        id=artifact.id,
        job_id=artifact.job_id,
        node_id=artifact.node_id,
        filename=artifact.filename,
        kind=artifact.kind,
        content_type=artifact.content_type,
        size=artifact.size,
        sha256=artifact.sha256,
        width=artifact.width,
        height=artifact.height,
        animated=artifact.animated,
        text=artifact.text,
        url=sign_url(base_url, artifact.id)
        if sign_url
        else f"{base_url.rstrip('/')}/api/v1/artifacts/{artifact.id}",
        created_at=artifact.created_at,
    )


def _vram_bytes(gigabytes: float | None) -> int | None:
    return int(gigabytes * 1024**3) if gigabytes is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _encode_cursor(row: JobRow | ArtifactRow) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), str(job_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("cursor is not one this server issued", field="cursor") from exc
