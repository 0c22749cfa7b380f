"""Progress a person can trust, on a real server: stages, one step/max name, an ETA,
and the last step kept on the finished job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.graphs import sampler_graph
from tests.helpers import job_reaches, read_sse, submit


async def test_stages_steps_and_eta(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", [fake.url])
    async with server.client() as client:
        first = await submit(client, sampler_graph(steps=8))
        events = await read_sse(client, f"/api/v1/jobs/{first['id']}/events")
        done = await job_reaches(client, first["id"], "completed")
        second = await submit(client, sampler_graph(steps=8, seed=2))
        later = await read_sse(client, f"/api/v1/jobs/{second['id']}/events")
    progress = [e["data"] for e in events if e["type"] == "progress"]
    stages = [p["stage"] for p in progress]
    assert "sampling" in stages and stages[-1] == "storing outputs"
    assert stages.index("loading models") < stages.index("sampling") < stages.index("decoding")
    # One name for step/max everywhere; "max" stays as an alias in events.
    sampling = [p for p in progress if p["stage"] == "sampling" and p["step"]]
    assert all(p["max_steps"] == p["max"] == 8 for p in sampling)
    # Sampling carries the bar: it covers most of it, instead of one node's 1/7.
    assert sampling[-1]["progress"] - sampling[0]["progress"] > 0.5
    # The finished job keeps its last step and max_steps.
    assert (done["step"], done["max_steps"]) == (8, 8)
    assert done["stage"] is None and done["eta_seconds"] is None and done["progress"] == 1.0
    # The second run on this backend knows its speed: an ETA from the first event on.
    etas = [e["data"]["eta_seconds"] for e in later if e["type"] == "progress"]
    assert etas[0] is not None and etas[0] > 0.2
    assert etas[-1] is not None and etas[-1] < etas[0]
