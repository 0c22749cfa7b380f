"""Cancel while queued and while running; retry; delete."""

from __future__ import annotations

from typing import Any

from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually, job, job_reaches, submit


async def test_cancel_while_queued_pipelined_and_running(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    fake.set_timing(step_time=0.1)
    server = await server_factory(database_url, [fake.url], backend_slots=2)
    async with server.client() as client:
        running = await submit(client, sampler_graph(steps=100))
        await eventually(lambda: _has_progress(client, running["id"]))
        pipelined = await submit(client, sampler_graph(steps=5, seed=2))
        queued = await submit(client, image_graph())
        waiting = await job_reaches(client, pipelined["id"], "running")
        assert waiting["backend"] == (await job(client, running["id"]))["backend"]

        response = await client.post(f"/api/v1/jobs/{queued['id']}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"

        # Waiting in ComfyUI's own queue: deleted there, so it never runs.
        response = await client.post(f"/api/v1/jobs/{pipelined['id']}/cancel")
        assert response.status_code == 200
        await job_reaches(client, pipelined["id"], "cancelled", timeout=20)

        response = await client.post(f"/api/v1/jobs/{running['id']}/cancel")
        assert response.status_code == 200
        assert response.json()["cancel_requested"] is True
        cancelled = await job_reaches(client, running["id"], "cancelled", timeout=20)
        assert cancelled["attempts"][0]["status"] == "cancelled"
        assert cancelled["outputs"] == []
        # Cancelling again is harmless; a cancelled job never moves on its own.
        again = await client.post(f"/api/v1/jobs/{running['id']}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert (await job(client, queued["id"]))["status"] == "cancelled"
    assert fake.prompt_count == 1  # neither the pipelined nor the queued job ran


async def _has_progress(client: Any, job_id: str) -> bool:
    body = await job(client, job_id)
    return body["status"] == "running" and (body["step"] or 0) >= 2


async def test_retry_a_cancelled_job_runs_a_new_attempt(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        first = await submit(client, sampler_graph(steps=60))
        await eventually(lambda: _has_progress(client, first["id"]))
        await client.post(f"/api/v1/jobs/{first['id']}/cancel")
        await job_reaches(client, first["id"], "cancelled", timeout=20)
        fake.set_timing(step_time=0.0)
        response = await client.post(f"/api/v1/jobs/{first['id']}/retry")
        assert response.status_code == 202
        done = await job_reaches(client, first["id"], "completed")
        assert [a["status"] for a in done["attempts"]] == ["cancelled", "completed"]
        assert done["attempt"] == 2 and done["error"] is None
        conflict = await client.post(f"/api/v1/jobs/{first['id']}/retry")
        assert conflict.status_code == 409
        assert conflict.json()["type"].endswith("/job-state-conflict")


async def test_delete_keeps_files_shared_with_other_jobs(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    graph = image_graph(color=0x445566)
    async with server.client() as client:
        first = (
            await client.post("/api/v1/jobs", json={"graph": graph}, headers={"Prefer": "wait=20"})
        ).json()
        # The same graph again: ComfyUI serves it from cache and names the same file.
        second = (
            await client.post("/api/v1/jobs", json={"graph": graph}, headers={"Prefer": "wait=20"})
        ).json()
        assert first["status"] == second["status"] == "completed"
        assert first["outputs"][0]["sha256"] == second["outputs"][0]["sha256"]
        assert (await client.delete(f"/api/v1/jobs/{first['id']}")).status_code == 204
        assert (await client.get(f"/api/v1/jobs/{first['id']}")).status_code == 404
        assert (await client.get(first["outputs"][0]["url"])).status_code == 404
        assert (await client.get(second["outputs"][0]["url"])).status_code == 200
        assert (await client.delete(f"/api/v1/jobs/{second['id']}")).status_code == 204
    store = server.runtime.store
    assert not await store.exists(second["outputs"][0]["sha256"])


async def test_delete_refuses_unfinished_jobs(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.1)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        running = await submit(client, sampler_graph(steps=30))
        response = await client.delete(f"/api/v1/jobs/{running['id']}")
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert (await job(client, running["id"]))["status"] in ("queued", "running")
        await client.post(f"/api/v1/jobs/{running['id']}/cancel")
