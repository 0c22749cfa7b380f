"""Liveness, readiness, the service summary, and the backends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from atelier import __version__
from atelier.api.deps import JobsDep, RuntimeDep
from atelier.telemetry.health import capacity_warnings

router = APIRouter(tags=["system"])


@router.get("/health", operation_id="health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", operation_id="ready", responses={503: {"description": "Not ready"}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Ready once the database answers and at least one backend is up (in the cluster
    shape: at least one live worker whose ComfyUI takes work)."""
    database = await runtime.database.ping()
    backends = 0
    if database or runtime.settings.shape == "single":
        described = await runtime.dispatcher.describe_backends()
        backends = sum(backend["status"] in ("up", "degraded") for backend in described)
    ok = database and backends > 0
    body = {"status": "ready" if ok else "not ready", "database": database, "backends_up": backends}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/", operation_id="service_info")
async def service_info(runtime: RuntimeDep, jobs: JobsDep) -> dict[str, Any]:
    capacity = runtime.dispatcher.capacity()
    info: dict[str, Any] = {
        "name": "atelier",
        "version": __version__,
        "shape": "cluster" if runtime.settings.shape == "cluster" else "single-node",
        "database": runtime.database.dialect,
        "demo": runtime.settings.demo,
        "jobs": await jobs.counts(),
        "backends": capacity.known if capacity else None,
        "backends_up": capacity.up if capacity else None,
        "docs": "/docs",
        "health": "/api/v1/health",
        "metrics": "/metrics",
    }
    warnings = capacity_warnings(runtime)
    if warnings:
        info["warnings"] = warnings
    if runtime.settings.demo:
        info["notice"] = (
            "DEMO MODE: jobs run on a built-in fake ComfyUI that simulates models; "
            "images are generated test patterns, not diffusion output."
        )
    return info


@router.get("/api/v1/backends", operation_id="list_backends", tags=["backends"])
async def list_backends(runtime: RuntimeDep) -> dict[str, list[dict[str, Any]]]:
    """The ComfyUI backends: this process's own, or in the cluster shape the workers'
    (health, VRAM, loaded model, jobs in flight, last heartbeat)."""
    return {"items": await runtime.dispatcher.describe_backends()}
