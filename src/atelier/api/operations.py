"""What operators look at: Prometheus metrics and the health view (docs/OPERATIONS.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from atelier.api.deps import RuntimeDep
from atelier.telemetry import health
from atelier.telemetry.metrics import CONTENT_TYPE, Metrics

router = APIRouter()


@router.get(
    "/metrics",
    operation_id="metrics",
    tags=["system"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics; needs the `metrics` or `admin` scope once API keys exist."""
    registry: Metrics = request.app.state.metrics
    return Response(await registry.render(runtime), media_type=CONTENT_TYPE)


@router.get(
    "/api/v1/health",
    operation_id="health_report",
    tags=["system"],
    responses={503: {"description": "Unhealthy: no job can finish right now"}},
)
async def health_report(runtime: RuntimeDep) -> JSONResponse:
    """Every component: database, backends, storage, webhook backlog; overall status."""
    report: dict[str, Any] = await health.health_report(runtime)
    return JSONResponse(report, status_code=503 if report["status"] == health.UNHEALTHY else 200)
