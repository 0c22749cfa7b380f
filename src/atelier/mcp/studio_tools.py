"""The studio's MCP tools: ``generate`` starts a run in a project, ``get_run`` tells how
it goes (status, segments, outputs). Over the SDK like every tool (tools.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from atelier.client import Run
from atelier.client.studio_base import RUN_STOPS
from atelier.mcp.tools import Connect
from atelier.mcp.tools import _calling as calling  # one error mapping for every tool

POLL_INTERVAL = 0.5  # get_run's look at a run it waits for


def run_summary(run: Run) -> dict[str, Any]:
    """What a model needs of a run: status, progress, segments, steps, outputs, error."""
    summary: dict[str, Any] = {
        "id": run.id,
        "pipeline": run.pipeline,
        "project_id": run.project_id,
        "status": run.status,
        "progress": round(run.progress, 3),
        "steps": [
            {"name": s.name, "status": s.status, "progress": round(s.progress, 3)}
            for s in run.steps
        ],
        "outputs": [
            {"id": a.id, "kind": a.kind, "filename": a.filename, "url": a.url} for a in run.outputs
        ],
    }
    if run.segments is not None:
        summary["segments"] = run.segments.model_dump(mode="json", exclude_none=True)
    if run.status == "awaiting_review":
        summary["note"] = "a quality gate holds the run for a person to approve or reject"
    if run.error is not None:
        summary["error"] = run.error
    return summary


def register(tool: Callable[[Any], Any], connect: Connect) -> None:
    """Add the studio tools through ``tool`` (build_server's registrar)."""

    @tool
    async def generate(
        ctx: Context,
        project: Annotated[str, Field(description="A project id")],
        prompt: Annotated[str, Field(min_length=1, max_length=4000)],
        character: Annotated[
            str | None, Field(description="A character of the project, by name or id")
        ] = None,
        duration: Annotated[
            float, Field(ge=0, le=600, description="Seconds; 0 makes a still image")
        ] = 0,
    ) -> dict[str, Any]:
        """Make something in a studio project: a still (duration 0), a shot, or a long
        video rendered by segments. The project's bible (style) and the character's
        traits and reference pictures shape it. Answers the run at once; follow it with
        get_run."""
        async with calling(connect, ctx) as atelier:
            run = await atelier.generate(project, prompt, character=character, duration=duration)
        return run_summary(run)

    @tool
    async def get_run(
        ctx: Context,
        run_id: str,
        wait_seconds: Annotated[
            float,
            Field(ge=0, le=600, description="Wait up to this long for the run to end"),
        ] = 0,
    ) -> dict[str, Any]:
        """A studio run: status (running, awaiting_review, completed, failed,
        cancelled), progress, each step, the segments done and left with an ETA, and the
        outputs (ids, kinds, download URLs). With wait_seconds, waits for the end (or a
        review) first."""
        async with calling(connect, ctx) as atelier:
            run = await atelier.get_run(run_id)
            deadline = time.monotonic() + wait_seconds
            # Polled, not followed by events: over /mcp the SDK reaches the app through
            # httpx's in-process ASGI transport, which holds a streamed answer until it
            # ends, so a run waiting for a review would never be seen to stop.
            while run.status not in RUN_STOPS and time.monotonic() < deadline:
                await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
                run = await atelier.get_run(run_id)
            return run_summary(run)
