"""``AsyncAtelier``: the asyncio SDK client (httpx), method for method ``Atelier``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import httpx
from httpx_sse import aconnect_sse

from atelier.auth.views import KeyCreated, KeyList, KeyView
from atelier.client import base
from atelier.client.errors import ServerError, WaitTimeout
from atelier.client.models import Artifact, Event, Job, JobPage
from atelier.client.studio_async import AsyncStudioCalls
from atelier.workflows.views import WorkflowDetail, WorkflowList, WorkflowSummary


class AsyncAtelier(AsyncStudioCalls):
    """A client of one Atelier server, for asyncio (``async with AsyncAtelier() as c``).

    ``base_url`` defaults to ``ATELIER_URL`` (else http://127.0.0.1:8000) and ``api_key``
    to ``ATELIER_API_KEY``. Every answer is a typed model; every problem the server
    answers is raised as a typed error (``atelier.client.errors``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = base.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base.base_url_of(base_url)
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=base.headers_of(api_key),
            timeout=timeout,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise base.connection_failed(self.base_url, exc) from exc
        return base.checked(response)

    # -- jobs ----------------------------------------------------------------------

    async def submit(
        self,
        graph: dict[str, Any] | None = None,
        *,
        workflow: str | None = None,
        params: dict[str, Any] | None = None,
        preset: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        vram_gb: float | None = None,
        webhook: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Queue a raw ComfyUI graph, or a workflow by name with its parameters. With
        ``wait``, the server holds the answer up to that many seconds for the end."""
        body = base.job_body(
            graph, workflow, params, preset, priority, metadata, labels, vram_gb, webhook
        )
        response = await self._request(
            "POST",
            "/api/v1/jobs",
            json=body,
            headers=base.submit_headers(wait, idempotency_key),
            timeout=(wait or 0) + self._timeout,
        )
        return Job.model_validate_json(response.content)

    async def run(
        self,
        workflow: str | None = None,
        params: dict[str, Any] | None = None,
        *,
        graph: dict[str, Any] | None = None,
        preset: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Submit, then wait for the end; the finished job (check its ``status``)."""
        job = await self.submit(
            graph,
            workflow=workflow,
            params=params,
            preset=preset,
            priority=priority,
            metadata=metadata,
            labels=labels,
        )
        return await self.wait(job.id, timeout=timeout)

    async def job(self, job_id: str) -> Job:
        response = await self._request("GET", base.job_path(job_id))
        return Job.model_validate_json(response.content)

    async def jobs(
        self,
        *,
        status: str | list[str] | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Newest first, one page; pass ``next_cursor`` back as ``cursor``."""
        params = base.list_params(status, labels, limit, cursor)
        response = await self._request("GET", "/api/v1/jobs", params=params)
        return JobPage.model_validate_json(response.content)

    async def cancel(self, job_id: str) -> Job:
        response = await self._request("POST", base.job_path(job_id) + "/cancel")
        return Job.model_validate_json(response.content)

    async def retry(self, job_id: str) -> Job:
        response = await self._request("POST", base.job_path(job_id) + "/retry")
        return Job.model_validate_json(response.content)

    async def delete(self, job_id: str) -> None:
        await self._request("DELETE", base.job_path(job_id))

    async def wait(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Follow the job's events until it ends; raises ``WaitTimeout`` after ``timeout``
        seconds (the job keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0
        while True:
            job = await self.job(job_id)
            if job.status in base.TERMINAL:
                return job
            try:
                # Ends at a terminal event: this attempt's, or an earlier one's if the
                # job was retried (then the loop follows on after it).
                async for event in self._follow(job_id, after, deadline):
                    after = event.id
            except base.DeadlinePassed:
                raise WaitTimeout(await self.job(job_id), timeout or 0.0) from None

    def events(self, job_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The job's events, replayed after event id ``after``, then live; ends with the
        job's last event. A broken connection is resumed with ``Last-Event-ID``."""
        return self._follow(job_id, after, None)

    async def _follow(
        self, job_id: str, after: int, deadline: float | None
    ) -> AsyncIterator[Event]:
        reconnect = base.Reconnect(self.base_url, after, deadline, self._timeout)
        while True:
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    base.job_path(job_id) + "/events",
                    headers=reconnect.headers(),
                    timeout=reconnect.timeout(),
                ) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        base.checked(source.response)
                    async for sse in source.aiter_sse():
                        event = reconnect.seen(sse)
                        if event is not None:
                            yield event
                            if event.terminal:
                                return
                reconnect.failed(None)
            except httpx.TransportError as exc:
                reconnect.failed(exc)
            except ServerError as exc:
                if exc.status not in base.GATEWAY_ERRORS:
                    raise
                reconnect.failed(exc)  # a proxy whose server is restarting
            await asyncio.sleep(reconnect.backoff())

    # -- files ---------------------------------------------------------------------

    async def download(self, artifact: Artifact | str) -> bytes:
        """An artifact's bytes (an ``Artifact``, its id, or its URL)."""
        async with self._get(artifact) as response:
            await response.aread()
            return response.content

    async def save(self, artifact: Artifact | str, path: str | os.PathLike[str]) -> Path:
        """Stream an artifact into a file (written whole or not at all); into a
        directory, under the file name the server gives it. Returns the file's path."""
        async with self._get(artifact) as response:
            target = base.target_path(Path(path), response, artifact)
            partial = target.with_name(target.name + ".part")
            try:
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        partial.replace(target)
        return target

    @contextlib.asynccontextmanager
    async def _get(self, artifact: Artifact | str) -> AsyncIterator[httpx.Response]:
        """A streamed GET of an artifact; the key goes to this server only."""
        url, with_key = base.artifact_url(self.base_url, artifact)
        try:
            async with contextlib.AsyncExitStack() as stack:
                http = self._http
                if not with_key:
                    http = await stack.enter_async_context(httpx.AsyncClient(timeout=self._timeout))
                response = await stack.enter_async_context(http.stream("GET", url))
                if response.status_code >= 400:
                    await response.aread()
                    base.checked(response)
                yield response
        except httpx.TransportError as exc:
            raise base.connection_failed(self.base_url, exc) from exc

    async def save_outputs(self, job: Job | str, directory: str | os.PathLike[str]) -> list[Path]:
        """Every output of a job into ``directory`` (made if missing); their paths."""
        job = await self.job(job) if isinstance(job, str) else job
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (one local mkdir)
        names = base.output_names(job)
        return [await self.save(a, folder / n) for a, n in zip(job.outputs, names, strict=True)]

    async def upload(
        self, file: str | os.PathLike[str] | bytes, *, filename: str | None = None
    ) -> Artifact:
        """Store a media input; pass the returned id as a workflow's image parameter."""
        name, data = base.upload_part(file, filename)
        response = await self._request("POST", "/api/v1/uploads", files={"file": (name, data)})
        return Artifact.model_validate_json(response.content)

    # -- workflows -----------------------------------------------------------------

    async def workflows(self) -> list[WorkflowSummary]:
        response = await self._request("GET", "/api/v1/workflows")
        return WorkflowList.model_validate_json(response.content).items

    async def workflow(self, name: str) -> WorkflowDetail:
        """A workflow with its parameters' JSON Schema and which backends can run it."""
        response = await self._request("GET", base.workflow_path(name))
        return WorkflowDetail.model_validate_json(response.content)

    # -- keys (admin) --------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        rate_limit: int | None = None,
        max_queued: int | None = None,
        max_running: int | None = None,
        max_artifact_bytes: int | None = None,
    ) -> KeyCreated:
        """Make an API key (admin); ``key`` in the answer is shown this once only."""
        body = base.key_body(name, scopes, rate_limit, max_queued, max_running, max_artifact_bytes)
        response = await self._request("POST", "/api/v1/admin/keys", json=body)
        return KeyCreated.model_validate_json(response.content)

    async def keys(self, *, include_revoked: bool = False) -> list[KeyView]:
        params = {"include_revoked": "true"} if include_revoked else None
        response = await self._request("GET", "/api/v1/admin/keys", params=params)
        return KeyList.model_validate_json(response.content).items

    async def revoke_key(self, key_id: str) -> None:
        await self._request("DELETE", base.key_path(key_id))
