"""/api/v1/admin: API keys, house statistics and the audit log (admin scope only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from atelier.api.deps import Creator, RuntimeDep, SecurityDep
from atelier.auth.caller import Limits
from atelier.auth.keys import describe
from atelier.auth.views import KeyCreate, KeyCreated, KeyList, KeyView
from atelier.jobs.stats import house_stats

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: int | None = Field(description="Pass as before= for older entries")


@router.post("/keys", operation_id="create_key", status_code=status.HTTP_201_CREATED, tags=["keys"])
async def create_key(body: KeyCreate, security: SecurityDep, creator: Creator) -> KeyCreated:
    """Make an API key; the key is in the answer and nowhere else, ever."""
    limits = Limits(body.rate_limit, body.max_queued, body.max_running, body.max_artifact_bytes)
    row, key = await security.keys.create(body.name, body.scopes, limits, actor=creator)
    return KeyCreated.model_validate({**describe(row), "key": key})


@router.get("/keys", operation_id="list_keys", tags=["keys"])
async def list_keys(
    security: SecurityDep, include_revoked: Annotated[bool, Query()] = False
) -> KeyList:
    rows = await security.keys.find(include_revoked=include_revoked)
    return KeyList(items=[KeyView.model_validate(describe(r)) for r in rows])


@router.delete(
    "/keys/{key_id}",
    operation_id="revoke_key",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["keys"],
)
async def revoke_key(key_id: str, security: SecurityDep, creator: Creator) -> Response:
    """Revoke a key: it fails from the next request on."""
    await security.keys.revoke(key_id, actor=creator)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/stats", operation_id="admin_stats")
async def admin_stats(
    runtime: RuntimeDep,
    window_hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24,
) -> dict[str, Any]:
    """Jobs by status; per workflow p50/p95 queue and execution seconds; per backend
    utilization (busy fraction over the last hour), failures and last error; per owner
    job counts."""
    names = [backend.name for backend in runtime.pool]
    return await house_stats(runtime.database, names, window=timedelta(hours=window_hours))


@router.get("/audit", operation_id="admin_audit")
async def admin_audit(
    security: SecurityDep,
    before: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Admin actions and key changes, newest first."""
    rows = await security.audit.page(before=before, limit=limit)
    items = [AuditEntry.model_validate(r, from_attributes=True) for r in rows]
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
