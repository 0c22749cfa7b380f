"""create_app(settings): the FastAPI application; its lifespan owns every resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from atelier import __version__
from atelier.api import admin, artifacts, jobs, openapi, problems, streaming, system, webhooks
from atelier.api import gallery as gallery_api
from atelier.api import projects as projects_api
from atelier.api import runs as runs_api
from atelier.api import uploads as uploads_api
from atelier.api import workflows as workflows_api
from atelier.api.limits import BodySizeLimit
from atelier.api.security import AuditTrail, authenticate
from atelier.runtime import start_runtime, stop_runtime
from atelier.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await start_runtime(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await stop_runtime(runtime)

    app = FastAPI(
        title="Atelier",
        version=__version__,
        description="A production job API for ComfyUI: durable jobs, honest progress, real files.",
        lifespan=lifespan,
        dependencies=[Depends(authenticate)],  # keys, scopes, limits: every /api/v1 route
    )
    problems.install(app)
    for module in (system, jobs, streaming, artifacts):
        app.include_router(module.router)
    for module in (admin, webhooks):
        app.include_router(module.router)
    for module in (workflows_api, uploads_api):  # workflow templates and media inputs
        app.include_router(module.router)
    for module in (projects_api, runs_api, gallery_api):  # the studio (docs/STUDIO.md)
        app.include_router(module.router)
    workflows_api.install(app)  # one documented route per workflow, kept current
    openapi.install(app)  # problem+json answers in the document: wraps the above, so last
    app.add_middleware(AuditTrail)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
