"""The studio calls of ``AsyncAtelier``, method for method those of ``Atelier``
(studio_sync.py)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
from httpx_sse import aconnect_sse

from atelier.client import base, studio_base
from atelier.client.models import Artifact, Event
from atelier.client.studio_models import (
    Bible,
    Character,
    GalleryPage,
    Pipeline,
    Project,
    ProjectDefaults,
    ProjectPage,
    Run,
    RunPage,
    VisualStyle,
)
from atelier.production.run_views import PipelineList
from atelier.production.views import CharacterList


class AsyncStudioCalls:
    """Mixed into ``AsyncAtelier``; every method answers the API's own model."""

    base_url: str
    _http: httpx.AsyncClient
    _timeout: float

    if TYPE_CHECKING:  # the client's own, which this mixin is part of

        async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response: ...

        async def save(self, artifact: Artifact | str, path: str | os.PathLike[str]) -> Path: ...

    # -- projects ------------------------------------------------------------------

    async def create_project(
        self,
        name: str,
        *,
        description: str = "",
        status: Literal["draft", "active"] = "draft",
        defaults: ProjectDefaults | dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        published: bool = False,
    ) -> Project:
        """A new project, with an empty bible titled after it."""
        body = studio_base.given(
            name=name,
            description=description,
            status=status,
            defaults=defaults,
            labels=labels,
            published=published,
        )
        response = await self._request("POST", "/api/v1/projects", json=body)
        return Project.model_validate_json(response.content)

    async def projects(
        self,
        *,
        status: str | list[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ProjectPage:
        """Newest first, one page; pass ``next_cursor`` back as ``cursor``."""
        params = studio_base.list_params(status=status, limit=limit, cursor=cursor)
        response = await self._request("GET", "/api/v1/projects", params=params)
        return ProjectPage.model_validate_json(response.content)

    async def project(self, project_id: str) -> Project:
        response = await self._request("GET", studio_base.project_path(project_id))
        return Project.model_validate_json(response.content)

    async def update_project(
        self,
        project_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: Literal["draft", "active", "archived"] | None = None,
        defaults: ProjectDefaults | dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        published: bool | None = None,
    ) -> Project:
        """Change the fields given; ``defaults`` changes only the keys it names."""
        body = studio_base.given(
            name=name,
            description=description,
            status=status,
            defaults=defaults,
            labels=labels,
            published=published,
        )
        response = await self._request("PATCH", studio_base.project_path(project_id), json=body)
        return Project.model_validate_json(response.content)

    async def archive_project(self, project_id: str) -> Project:
        """Kept and readable, but nothing new is made in it until unarchived."""
        response = await self._request("POST", studio_base.project_path(project_id) + "/archive")
        return Project.model_validate_json(response.content)

    async def delete_project(self, project_id: str) -> None:
        """The project, its bible and characters go (its runs and files stay)."""
        await self._request("DELETE", studio_base.project_path(project_id))

    # -- the bible -----------------------------------------------------------------

    async def bible(self, project_id: str) -> Bible:
        response = await self._request("GET", studio_base.project_path(project_id) + "/bible")
        return Bible.model_validate_json(response.content)

    async def replace_bible(
        self,
        project_id: str,
        *,
        title: str = "",
        description: str = "",
        style: VisualStyle | dict[str, Any] | None = None,
        world: dict[str, Any] | None = None,
    ) -> Bible:
        """The whole bible (PUT): a field not given goes back to empty."""
        body = studio_base.given(title=title, description=description, style=style, world=world)
        path = studio_base.project_path(project_id) + "/bible"
        response = await self._request("PUT", path, json=body)
        return Bible.model_validate_json(response.content)

    async def update_bible(
        self,
        project_id: str,
        *,
        title: str | None = None,
        description: str | None = None,
        style: VisualStyle | dict[str, Any] | None = None,
        world: dict[str, Any] | None = None,
    ) -> Bible:
        """Change the fields given (PATCH)."""
        body = studio_base.given(title=title, description=description, style=style, world=world)
        path = studio_base.project_path(project_id) + "/bible"
        response = await self._request("PATCH", path, json=body)
        return Bible.model_validate_json(response.content)

    # -- characters ----------------------------------------------------------------

    async def create_character(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        visual_traits: dict[str, Any] | None = None,
        personality: dict[str, Any] | None = None,
        prompt_fragment: str = "",
        lora: str | None = None,
        seed: int | None = None,
    ) -> Character:
        """A character of the project; ``lora`` is ``name:weight``."""
        body = studio_base.given(
            name=name,
            description=description,
            visual_traits=visual_traits,
            personality=personality,
            prompt_fragment=prompt_fragment,
            lora=lora,
            seed=seed,
        )
        path = studio_base.project_path(project_id) + "/characters"
        response = await self._request("POST", path, json=body)
        return Character.model_validate_json(response.content)

    async def characters(self, project_id: str) -> list[Character]:
        path = studio_base.project_path(project_id) + "/characters"
        response = await self._request("GET", path)
        return CharacterList.model_validate_json(response.content).items

    async def character(self, project_id: str, character: str) -> Character:
        """A character by id or by name."""
        response = await self._request("GET", studio_base.character_path(project_id, character))
        return Character.model_validate_json(response.content)

    async def update_character(
        self,
        project_id: str,
        character: str,
        *,
        name: str | None = None,
        description: str | None = None,
        visual_traits: dict[str, Any] | None = None,
        personality: dict[str, Any] | None = None,
        prompt_fragment: str | None = None,
        lora: str | None = None,
        seed: int | None = None,
    ) -> Character:
        """Change the fields given."""
        body = studio_base.given(
            name=name,
            description=description,
            visual_traits=visual_traits,
            personality=personality,
            prompt_fragment=prompt_fragment,
            lora=lora,
            seed=seed,
        )
        path = studio_base.character_path(project_id, character)
        response = await self._request("PATCH", path, json=body)
        return Character.model_validate_json(response.content)

    async def delete_character(self, project_id: str, character: str) -> None:
        await self._request("DELETE", studio_base.character_path(project_id, character))

    async def add_reference(
        self,
        project_id: str,
        character: str,
        image: str | os.PathLike[str] | bytes | None = None,
        *,
        artifact: str | None = None,
        url: str | None = None,
    ) -> Character:
        """Add a reference image: a local file or bytes, an artifact id (an upload or an
        earlier output) or an https URL. Pipelines condition on the first one first."""
        body = studio_base.reference_body(image, artifact, url)
        path = studio_base.character_path(project_id, character) + "/references"
        response = await self._request("POST", path, json=body)
        return Character.model_validate_json(response.content)

    # -- generate and pipeline runs ------------------------------------------------

    async def generate(
        self,
        project_id: str,
        prompt: str,
        *,
        character: str | None = None,
        duration: float = 0,
        style: str | None = None,
        scene_type: Literal["dialogue", "action", "emotional", "epic"] | None = None,
        quality: Literal["fast_preview", "production", "ultra"] | None = None,
        segments: int | Literal["auto"] | None = None,
        negative_prompt: str | None = None,
        fps: int | None = None,
        width: int | None = None,
        height: int | None = None,
        steps: int | None = None,
        seed: int | None = None,
        review: Literal["auto", "manual", "none"] | None = None,
    ) -> Run:
        """Make something in the project: ``duration`` 0 is a still, up to 5 s one shot,
        longer a video by segments. Answers the run at once; ``wait_run`` follows it."""
        body = studio_base.given(
            prompt=prompt,
            character=character,
            duration=duration,
            style=style,
            scene_type=scene_type,
            quality=quality,
            segments=segments,
            negative_prompt=negative_prompt,
            fps=fps,
            width=width,
            height=height,
            steps=steps,
            seed=seed,
            review=review,
        )
        path = studio_base.project_path(project_id) + "/generate"
        response = await self._request("POST", path, json=body)
        return Run.model_validate_json(response.content)

    async def pipelines(self) -> list[Pipeline]:
        """The built-in pipelines, each with the JSON Schema of its params."""
        response = await self._request("GET", "/api/v1/pipelines")
        return PipelineList.model_validate_json(response.content).items

    async def start_run(self, pipeline: str, params: dict[str, Any] | None = None) -> Run:
        response = await self._request(
            "POST", studio_base.pipeline_runs_path(pipeline), json={"params": params or {}}
        )
        return Run.model_validate_json(response.content)

    async def runs(
        self,
        *,
        project: str | None = None,
        status: str | list[str] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        """Newest first, one page; pass ``next_cursor`` back as ``cursor``."""
        params = studio_base.list_params(project=project, status=status, limit=limit, cursor=cursor)
        response = await self._request("GET", "/api/v1/runs", params=params)
        return RunPage.model_validate_json(response.content)

    async def get_run(self, run_id: str) -> Run:
        """Status, progress, every step, segment counts and ETA, outputs."""
        response = await self._request("GET", studio_base.run_path(run_id))
        return Run.model_validate_json(response.content)

    async def cancel_run(self, run_id: str) -> Run:
        response = await self._request("POST", studio_base.run_path(run_id) + "/cancel")
        return Run.model_validate_json(response.content)

    async def retry_run(self, run_id: str) -> Run:
        """Run the failed, cancelled and rejected steps again; finished steps stay."""
        response = await self._request("POST", studio_base.run_path(run_id) + "/retry")
        return Run.model_validate_json(response.content)

    async def approve_run(self, run_id: str, *, step: str | None = None, comment: str = "") -> Run:
        """Pass the gate awaiting review (``step``; default every one waiting)."""
        body = studio_base.given(step=step, comment=comment)
        response = await self._request("POST", studio_base.run_path(run_id) + "/approve", json=body)
        return Run.model_validate_json(response.content)

    async def reject_run(self, run_id: str, *, step: str | None = None, comment: str = "") -> Run:
        """Fail the gate awaiting review; the run fails (``retry_run`` rerolls it)."""
        body = studio_base.given(step=step, comment=comment)
        response = await self._request("POST", studio_base.run_path(run_id) + "/reject", json=body)
        return Run.model_validate_json(response.content)

    async def wait_run(self, run_id: str, *, timeout: float | None = None) -> Run:
        """Follow the run until it ends or waits for a review (``awaiting_review``);
        raises ``WaitTimeout`` after ``timeout`` seconds (the run goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0
        while True:
            run = await self.get_run(run_id)
            if run.status in studio_base.RUN_STOPS:
                return run
            try:
                stopped = studio_base.run_stopped
                async for event in self._follow_run(run_id, after, deadline, stopped):
                    after = event.id
            except base.DeadlinePassed:
                raise studio_base.RunWaitTimeout(
                    await self.get_run(run_id), timeout or 0.0
                ) from None

    def run_events(self, run_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The run's events (``run.step``, ``run.status``; ``job_id`` is the run's id),
        replayed after event id ``after``, then live, until the run ends."""
        return self._follow_run(run_id, after, None, studio_base.run_ended)

    async def _follow_run(
        self,
        run_id: str,
        after: int,
        deadline: float | None,
        last: studio_base.EventTest,
    ) -> AsyncIterator[Event]:
        reconnect = base.Reconnect(self.base_url, after, deadline, self._timeout)
        while True:
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    studio_base.run_path(run_id) + "/events",
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
                            if last(event):
                                return
                reconnect.failed(None)
            except httpx.TransportError as exc:
                reconnect.failed(exc)
            await asyncio.sleep(reconnect.backoff())

    async def save_run_outputs(
        self, run: Run | str, directory: str | os.PathLike[str]
    ) -> list[Path]:
        """Every output of a run (its last steps' files) into ``directory``; the paths."""
        run = await self.get_run(run) if isinstance(run, str) else run
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (one local mkdir)
        names = studio_base.file_names(run.outputs)
        return [await self.save(a, folder / n) for a, n in zip(run.outputs, names, strict=True)]

    # -- the gallery ---------------------------------------------------------------

    async def gallery(
        self,
        *,
        project: str | None = None,
        character: str | None = None,
        kind: Literal["image", "video"] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> GalleryPage:
        """Published outputs with thumbnails (and, with a key, your own unpublished)."""
        params = studio_base.list_params(
            project=project, character=character, kind=kind, limit=limit, cursor=cursor
        )
        response = await self._request("GET", "/api/v1/gallery", params=params)
        return GalleryPage.model_validate_json(response.content)

    async def publish(self, artifact: Artifact | str) -> None:
        """Show one output of your runs in the gallery."""
        artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
        await self._request("PUT", studio_base.gallery_path(artifact_id))

    async def unpublish(self, artifact: Artifact | str) -> None:
        artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
        await self._request("DELETE", studio_base.gallery_path(artifact_id))
