"""The studio, built on the core: projects, runs and their engine, the gallery."""

from __future__ import annotations

from dataclasses import dataclass

from atelier.db.database import Database
from atelier.dispatch.backends import BackendPool
from atelier.events import EventBus
from atelier.jobs.service import JobsService
from atelier.production.engine import RunEngine
from atelier.production.gallery import GalleryService
from atelier.production.gates import GateKeeper
from atelier.production.media_steps import MediaSteps
from atelier.production.projects import ProjectsService
from atelier.production.runs import RunsService
from atelier.settings import Settings
from atelier.storage.base import ArtifactStore


@dataclass
class Studio:
    projects: ProjectsService
    runs: RunsService
    engine: RunEngine
    gallery: GalleryService

    async def start(self) -> None:
        """After the dispatcher: the engine resumes every active run at once."""
        await self.engine.start()
        await self.engine.resume()  # every active run now, not after the first resync

    async def stop(self) -> None:
        await self.engine.stop()


def build_studio(
    settings: Settings,
    *,
    database: Database,
    bus: EventBus,
    store: ArtifactStore,
    pool: BackendPool,
    jobs: JobsService,
) -> Studio:
    """Built on the jobs service: every job step is submitted through it."""
    sign_url = jobs.sign_url

    def artifact_url(base_url: str, artifact_id: str) -> str:
        if sign_url is not None:
            return sign_url(base_url, artifact_id)
        return f"{base_url.rstrip('/')}/api/v1/artifacts/{artifact_id}"

    def backends_up() -> int:
        capacity = jobs.dispatcher.capacity()
        return capacity.up if capacity is not None else 0

    media = MediaSteps(store, settings.data_dir / "studio-scratch")
    engine = RunEngine(
        database,
        bus,
        jobs,
        media,
        GateKeeper(media.path_of),
        resync_interval=settings.studio_resync_interval,
    )
    return Studio(
        projects=ProjectsService(database, jobs.workflows.media, jobs.ledger.unit, artifact_url),
        runs=RunsService(database, engine, backends_up, sign_url),
        engine=engine,
        gallery=GalleryService(settings, database, pool, jobs.workflows.registry, artifact_url),
    )
