"""create_app(settings): the FastAPI application; its lifespan owns every resource."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from atelier import __version__
from atelier.api import admin, artifacts, jobs, openapi, problems, streaming, system, webhooks
from atelier.api import gallery as gallery_api
from atelier.api import mcp_endpoint as mcp_api
from atelier.api import operations as operations_api
from atelier.api import outputs as outputs_api
from atelier.api import projects as projects_api
from atelier.api import runs as runs_api
from atelier.api import uploads as uploads_api
from atelier.api import workflows as workflows_api
from atelier.api.bodies import JsonBodyGuard
from atelier.api.limits import BodySizeLimit
from atelier.api.security import AuditTrail, authenticate
from atelier.api.strict_query import reject_unknown_query
from atelier.runtime import start_runtime, stop_runtime
from atelier.settings import Settings
from atelier.telemetry.metrics import Metrics, RequestMetrics
from atelier.ui import install as install_ui


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await start_runtime(settings)
        app.state.runtime = runtime
        app.state.metrics.start(runtime)
        try:
            async with mcp_api.serving(app):  # the MCP tools at /mcp
                yield
        finally:
            await app.state.metrics.stop()
            await stop_runtime(runtime)

    app = FastAPI(
        title="Atelier",
        version=__version__,
        description="A production job API for ComfyUI: durable jobs, honest progress, real files.",
        lifespan=lifespan,
        # keys, scopes, limits; then unknown query parameters are a 400: every /api/v1 route
        dependencies=[Depends(authenticate), Depends(reject_unknown_query)],
    )
    problems.install(app)
    app.state.metrics = Metrics()  # one registry per app (docs/OPERATIONS.md)
    app.include_router(operations_api.router)  # GET /metrics, GET /api/v1/health
    for module in (system, jobs, streaming, artifacts):
        app.include_router(module.router)
    for module in (admin, webhooks):
        app.include_router(module.router)
    for module in (workflows_api, uploads_api):  # workflow templates and media inputs
        app.include_router(module.router)
    for module in (projects_api, runs_api, gallery_api):  # the studio (docs/STUDIO.md)
        app.include_router(module.router)
    workflows_api.install(app)  # one documented route per workflow, kept current
    mcp_api.install(app)  # /mcp: the MCP tools over streamable HTTP, same API keys
    app.include_router(outputs_api.router)  # the web UI's gallery, and anyone's
    install_ui(app)  # the web UI at /ui (docs/UI.md)
    openapi.install(app)  # problem+json answers in the document: wraps the above, so last
    app.add_middleware(AuditTrail)
    app.add_middleware(JsonBodyGuard, max_depth=settings.max_json_depth)  # inside the size limit
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # outermost: every answer
    return app


def freeze_heap_after_start(app: FastAPI) -> None:
    """Once the app has started, move everything made so far (modules, the schema, the
    OpenAPI document, ComfyUI's object_info) out of the garbage collector's sight. A
    full collection looked at all of it each time and held the loop for about 100 ms,
    which was most of the status route's p99 (docs/PERFORMANCE.md). For `atelier serve`,
    which builds one app per process; test processes build many and freeze nothing."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[Any]:
        async with inner(started) as state:
            gc.collect()
            gc.freeze()
            yield state

    app.router.lifespan_context = lifespan
