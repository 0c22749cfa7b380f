"""One view of every component's health, and the warnings a person should see.

``GET /health`` stays a cheap liveness probe; this is the view behind
``GET /api/v1/health``: the database, each backend, storage, the webhook backlog, and an
overall ``healthy | degraded | unhealthy``. Unhealthy means no job can finish (the
database is down, outputs cannot be written, or no backend takes work); degraded means
jobs run but something needs a look (a backend down or degraded, webhooks piling up).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atelier.db.operations import OperationsRepository

if TYPE_CHECKING:
    from atelier.runtime import Runtime

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
WEBHOOK_BACKLOG_DEGRADED = 1000  # pending deliveries beyond this: receivers are not keeping up
NO_BACKEND = (
    "no ComfyUI backend is configured: jobs are accepted but wait in the queue until one "
    "is added (atelier serve --backend URL, or ATELIER_BACKENDS)"
)
NONE_UP = "no backend is up: queued jobs wait until one comes back"
NO_WORKER = (
    "no worker is alive: jobs are accepted but wait in the queue until an `atelier worker` "
    "heartbeats (docs/CLUSTER.md)"
)
NO_WORKER_UP = "no worker's ComfyUI is up: queued jobs wait until one comes back"


def capacity_warnings(runtime: Runtime) -> list[str]:
    """What stops accepted jobs from running right now (cheap: no I/O). In the cluster
    shape, the live workers as the scheduler last saw them (nothing before its first look)."""
    capacity = runtime.dispatcher.capacity()
    if capacity is None:
        return []
    cluster = capacity.kind == "worker"
    if capacity.known == 0:
        return [NO_WORKER if cluster else NO_BACKEND]
    if capacity.up == 0:
        return [NO_WORKER_UP if cluster else NONE_UP]
    return []


async def health_report(runtime: Runtime) -> dict[str, Any]:
    database = await _database(runtime)
    storage = await asyncio.to_thread(_storage, runtime)
    backends: list[dict[str, Any]] = []
    webhooks: dict[str, Any] = {"backlog": None, "failed": None}
    if database["status"] == "up" or runtime.settings.shape == "single":
        # The cluster's workers are rows in the database; a single node's are in memory.
        backends = [_backend(b) for b in await runtime.dispatcher.describe_backends()]
    if database["status"] == "up":
        async with runtime.database.transaction() as session:
            deliveries = await OperationsRepository(session).deliveries_by_status()
        webhooks = {"backlog": deliveries["pending"], "failed": deliveries["failed"]}
    up = sum(1 for b in backends if b["status"] in ("up", "degraded"))
    if database["status"] != "up" or not storage["writable"] or up == 0:
        overall = UNHEALTHY
    elif (
        any(b["status"] != "up" for b in backends)
        or (webhooks["backlog"] or 0) > WEBHOOK_BACKLOG_DEGRADED
    ):
        overall = DEGRADED
    else:
        overall = HEALTHY
    return {
        "status": overall,
        "database": database,
        "backends": backends,
        "storage": storage,
        "webhooks": webhooks,
        "warnings": capacity_warnings(runtime),
    }


async def _database(runtime: Runtime) -> dict[str, Any]:
    try:
        ok = await asyncio.wait_for(runtime.database.ping(), timeout=5.0)
    except TimeoutError:
        ok = False
    return {"status": "up" if ok else "down", "dialect": runtime.database.dialect}


def _backend(described: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "url", "status", "vram_free", "vram_total", "slots", "queue_length")
    return {**{key: described.get(key) for key in keys}, "last_error": described["last_error"]}


def _storage(runtime: Runtime) -> dict[str, Any]:
    root: Path | None = getattr(runtime.store, "root", None)
    if root is None:  # a remote store: it says where it writes, if it can
        describe = getattr(runtime.store, "describe", None)
        details = describe() if callable(describe) else {}
        return {"kind": type(runtime.store).__name__, "writable": True, **details}
    writable = True
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".health-"):
            pass
    except OSError:
        writable = False
    free = total = None
    try:
        usage = shutil.disk_usage(root)
        free, total = usage.free, usage.total
    except OSError:
        pass
    return {
        "kind": "local",
        "path": os.fspath(root.resolve()),
        "writable": writable,
        "free_bytes": free,
        "total_bytes": total,
    }
