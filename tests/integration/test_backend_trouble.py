"""A backend that answers 500s for a while, or breaks a download midway, fails no job.

Found by the chaos suite (bench/chaos.py): ComfyUI answering 500 to /history at the end of
a job failed the job as "internal"; a 5xx now counts as the backend being unavailable
(retried, and given up on after backend_lost_timeout like a refused connection).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.graphs import sampler_graph
from tests.helpers import eventually, job, job_reaches, submit


async def test_500s_around_the_end_of_a_job_are_ridden_out(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [f"a={fake.url}"], backend_lost_timeout=30.0
    )
    async with server.client() as client, httpx.AsyncClient(base_url=fake.url) as comfy:
        submitted = await submit(client, sampler_graph(steps=20))

        async def running() -> bool:
            body = await job(client, submitted["id"])
            return body["status"] == "running" and (body["step"] or 0) >= 1

        await eventually(running)
        # The prompt ends while every request (/history, /queue, /view) answers 500.
        fault = await comfy.post("/fake/fault", json={"errors": True, "for_seconds": 3})
        assert fault.status_code == 200
        done = await job_reaches(client, submitted["id"], "completed", "failed", timeout=60)
    assert done["status"] == "completed", done["error"]
    assert [a["status"] for a in done["attempts"]] == ["completed"]
    assert len(done["outputs"]) == 1
