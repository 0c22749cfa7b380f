"""The run's state as its steps say it: status counts, progress, seeds, submit errors."""

from __future__ import annotations

import random
from typing import Any

from atelier.db.studio_tables import StepRow
from atelier.db.tables import JobRow
from atelier.db.unit import UnitOfWork
from atelier.errors import AtelierError, CapabilityMissing

ACTIVE = {"submitting", "running"}
STOPPED = {"failed", "cancelled", "rejected"}
RUN_TERMINAL = {"completed", "failed", "cancelled"}


async def emit_status(
    unit: UnitOfWork, run_id: str, status: str, progress: float, steps: list[StepRow]
) -> None:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    segments = [s for s in steps if s.group == "segment"]
    data: dict[str, Any] = {"status": status, "progress": round(progress, 4), "steps": counts}
    if segments:
        data["segments"] = {
            "total": len(segments),
            "completed": sum(s.status == "completed" for s in segments),
            "failed": sum(s.status in STOPPED for s in segments),
            "processing": sum(s.status in ACTIVE for s in segments),
        }
    await unit.emit(run_id, "run.status", data)


def run_progress(steps: list[StepRow], jobs: dict[str, JobRow]) -> float:
    if not steps:
        return 1.0
    done = 0.0
    for step in steps:
        if step.status == "completed":
            done += 1
        elif step.status == "running" and step.job_id in jobs:
            done += float(jobs[step.job_id].progress or 0.0)
    return min(1.0, done / len(steps))


def reseeded(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with a new seed for the workflow and its fallback."""
    seed = random.randrange(2**32)
    spec = {**spec, "params": {**spec["params"], "seed": seed}}
    if spec.get("fallback"):
        fallback = spec["fallback"]
        spec["fallback"] = {**fallback, "params": {**fallback["params"], "seed": seed}}
    return spec


def unrunnable(exc: AtelierError) -> bool:
    """Whether a fallback may help: no backend can run it, or no such workflow here."""
    if isinstance(exc, CapabilityMissing):
        return True
    errors = exc.extra.get("errors") or []
    return any(e.get("field") == "workflow" for e in errors)


def errors_of(exc: AtelierError) -> dict[str, Any]:
    errors = exc.extra.get("errors")
    return {"errors": errors} if errors else {}
