"""The studio, built on a running core: projects, runs and their engine, the gallery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from atelier.production.engine import RunEngine
from atelier.production.gallery import GalleryService
from atelier.production.gates import GateKeeper
from atelier.production.media_steps import MediaSteps
from atelier.production.projects import ProjectsService
from atelier.production.runs import RunsService

if TYPE_CHECKING:
    from atelier.runtime import Runtime


@dataclass
class Studio:
    projects: ProjectsService
    runs: RunsService
    engine: RunEngine
    gallery: GalleryService


async def start_studio(runtime: Runtime) -> Studio:
    """Built after the jobs service; the engine resumes every active run at once."""
    jobs = runtime.jobs

    def artifact_url(base_url: str, artifact_id: str) -> str:
        if jobs.sign_url is not None:
            return jobs.sign_url(base_url, artifact_id)
        return f"{base_url.rstrip('/')}/api/v1/artifacts/{artifact_id}"

    media = MediaSteps(runtime.store, runtime.settings.data_dir / "studio-scratch")
    engine = RunEngine(
        runtime.database,
        runtime.bus,
        jobs,
        media,
        GateKeeper(media.path_of),
        resync_interval=runtime.settings.studio_resync_interval,
    )
    studio = Studio(
        projects=ProjectsService(
            runtime.database, jobs.workflows.media, jobs.ledger.unit, artifact_url
        ),
        runs=RunsService(runtime.database, engine, runtime.pool, lambda: jobs.sign_url),
        engine=engine,
        gallery=GalleryService(runtime, artifact_url),
    )
    await engine.start()
    await engine.resume()  # every active run now, not after the first resync
    return studio


async def stop_studio(studio: Studio) -> None:
    await studio.engine.stop()
