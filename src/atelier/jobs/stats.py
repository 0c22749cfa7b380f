"""What the house did: the numbers behind GET /api/v1/admin/stats."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from atelier.db.database import Database
from atelier.db.repositories import JobRepository
from atelier.db.security import UsageRepository
from atelier.db.tables import utcnow
from atelier.job_state import AttemptStatus


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)


def busy_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """Length of the union of the intervals (pipelined attempts overlap)."""
    total = 0.0
    end: datetime | None = None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


async def house_stats(
    database: Database, backends: list[str], *, window: timedelta = timedelta(hours=24)
) -> dict[str, Any]:
    now = utcnow()
    hour = now - timedelta(hours=1)
    async with database.transaction() as session:
        usage = UsageRepository(session)
        by_status = await JobRepository(session).count_by_status()
        timings = await usage.timings(now - window)
        attempts = await usage.attempts_since(hour)
        last_errors = await usage.last_errors()
        owners = await usage.owner_counts()

    queue: dict[str | None, list[float]] = {}
    execution: dict[str | None, list[float]] = {}
    for workflow, created, started, finished in timings:
        queue.setdefault(workflow, []).append((started - created).total_seconds())
        if finished is not None:
            execution.setdefault(workflow, []).append((finished - started).total_seconds())
    workflows = [
        {
            "workflow": workflow,
            "jobs": len(queue[workflow]),
            "queue_seconds": {
                "p50": percentile(queue[workflow], 0.5),
                "p95": percentile(queue[workflow], 0.95),
            },
            "execution_seconds": {
                "p50": percentile(execution.get(workflow, []), 0.5),
                "p95": percentile(execution.get(workflow, []), 0.95),
            },
        }
        for workflow in sorted(queue, key=lambda w: (w is not None, w or ""))
    ]

    intervals: dict[str, list[tuple[datetime, datetime]]] = {}
    failures: dict[str, int] = {}
    for attempt in attempts:
        start = max(attempt.started_at, hour)
        stop = attempt.finished_at or now
        if stop > start:
            intervals.setdefault(attempt.backend, []).append((start, stop))
        if attempt.status in (AttemptStatus.FAILED, AttemptStatus.LOST):
            failures[attempt.backend] = failures.get(attempt.backend, 0) + 1
    names = sorted(set(backends) | set(intervals) | set(last_errors))
    backend_rows = []
    for name in names:
        error = last_errors.get(name)
        backend_rows.append(
            {
                "backend": name,
                "utilization": round(min(1.0, busy_seconds(intervals.get(name, [])) / 3600), 4),
                "failures_last_hour": failures.get(name, 0),
                "last_error": None
                if error is None
                else {
                    "at": error[0].isoformat(),
                    "type": error[1].get("type"),
                    "message": error[1].get("message"),
                },
            }
        )
    return {
        "generated_at": now.isoformat(),
        "window_hours": window.total_seconds() / 3600,
        "jobs": by_status,
        "workflows": workflows,
        "backends": backend_rows,
        "owners": [
            {"owner": owner, "jobs": counts}
            for owner, counts in sorted(
                owners.items(), key=lambda i: (i[0] is not None, i[0] or "")
            )
        ],
    }
