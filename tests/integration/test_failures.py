"""No job is lost: backends that die, hang or restart, and Atelier restarting mid-job."""

from __future__ import annotations

from typing import Any

from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually, job, job_reaches, submit


async def _running_on(client: Any, job_id: str) -> str:
    async def check() -> str | None:
        body = await job(client, job_id)
        return body["backend"] if body["status"] == "running" and (body["step"] or 0) >= 1 else None

    backend: str = await eventually(check)
    return backend


async def _two_backends(
    server_factory: Any, fake: Any, fake_b: Any, tmp_path: Any
) -> tuple[Any, dict[str, Any]]:
    """A server over backends "a" and "b", both with 50 ms sampler steps."""
    for backend in (fake, fake_b):
        backend.set_timing(step_time=0.05)
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [f"a={fake.url}", f"b={fake_b.url}"]
    )
    return server, {"a": fake, "b": fake_b}


async def test_backend_killed_mid_job_finishes_elsewhere(
    server_factory: Any, fake: Any, fake_b: Any, tmp_path: Any
) -> None:
    server, fakes = await _two_backends(server_factory, fake, fake_b, tmp_path)
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=40))
        first = await _running_on(client, submitted["id"])
        fakes[first].crash()
        done = await job_reaches(client, submitted["id"], "completed", timeout=40)
        backends = (await client.get("/api/v1/backends")).json()["items"]
    assert [a["status"] for a in done["attempts"]] == ["lost", "completed"]
    assert done["attempts"][0]["backend"] == first
    assert done["attempts"][0]["error"]["type"] == "backend_lost"
    assert done["backend"] != first and len(done["outputs"]) == 1
    crashed = next(b for b in backends if b["name"] == first)
    assert crashed["status"] == "down" and crashed["last_error"]


async def test_backend_that_hangs_mid_job_is_given_up(
    server_factory: Any, fake: Any, fake_b: Any, tmp_path: Any
) -> None:
    server, fakes = await _two_backends(server_factory, fake, fake_b, tmp_path)
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=40))
        first = await _running_on(client, submitted["id"])
        fakes[first].hang()
        try:
            done = await job_reaches(client, submitted["id"], "completed", timeout=40)
        finally:
            fakes[first].unhang()
    assert [a["status"] for a in done["attempts"]] == ["lost", "completed"]
    assert done["backend"] != first


async def test_backend_restart_that_loses_the_queue_requeues(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=30))
        await _running_on(client, submitted["id"])
        fake.restart()
        done = await job_reaches(client, submitted["id"], "completed", timeout=40)
    assert [a["status"] for a in done["attempts"]] == ["lost", "completed"]
    assert len(done["outputs"]) == 1


async def test_dropped_websocket_does_not_disturb_the_job(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=30))
        await _running_on(client, submitted["id"])
        fake.drop_websockets()
        done = await job_reaches(client, submitted["id"], "completed", timeout=40)
    assert [a["status"] for a in done["attempts"]] == ["completed"]
    assert fake.prompt_count == 1


async def test_atelier_restart_mid_job_reattaches(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(database_url, [f"a={fake.url}"])
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=40))
        queued = await submit(client, image_graph())
        await _running_on(client, submitted["id"])
    await server.stop()
    # While Atelier is down the prompt runs on; it may even finish before we are back.
    again = await server_factory(database_url, [f"a={fake.url}"], port=server.settings.port)
    async with again.client() as client:
        done = await job_reaches(client, submitted["id"], "completed", timeout=40)
        other = await job_reaches(client, queued["id"], "completed", timeout=40)
    assert [a["status"] for a in done["attempts"]] == ["completed"]
    assert len(done["outputs"]) == 1 and len(other["outputs"]) == 1
    assert fake.prompt_count == 2  # nothing ran twice


async def test_atelier_restart_after_the_prompt_finished_collects_outputs(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    server = await server_factory(url, [f"a={fake.url}"])
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=10))
        await _running_on(client, submitted["id"])
    await server.stop()
    await eventually(lambda: _fake_idle(fake))
    again = await server_factory(url, [f"a={fake.url}"], port=server.settings.port)
    async with again.client() as client:
        done = await job_reaches(client, submitted["id"], "completed")
    assert len(done["outputs"]) == 1 and fake.prompt_count == 1


async def _fake_idle(fake: Any) -> bool:
    import httpx

    async with httpx.AsyncClient(base_url=fake.url) as comfy:
        queue = (await comfy.get("/queue")).json()
    return not queue["queue_running"] and not queue["queue_pending"]


async def test_runtime_error_in_a_node_fails_the_job(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.fail_node(
        "ImageInvert", "bad pixels in /home/comfy/ComfyUI/input/secret.png", "RuntimeError"
    )
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        response = await client.post(
            "/api/v1/jobs", json={"graph": image_graph()}, headers={"Prefer": "wait=20"}
        )
        failed = response.json()
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error["type"] == "node_error"
    assert (error["node_id"], error["node_type"], error["exception_type"]) == (
        "2",
        "ImageInvert",
        "RuntimeError",
    )
    assert "/home/comfy" not in error["message"] and "secret.png" in error["message"]
    assert "traceback" not in error


async def test_out_of_memory_is_typed_and_retryable(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    fake.fail_node("KSampler", "Allocation on device", "torch.OutOfMemoryError")
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        failed = (
            await client.post(
                "/api/v1/jobs", json={"graph": sampler_graph()}, headers={"Prefer": "wait=20"}
            )
        ).json()
    assert failed["error"]["type"] == "out_of_memory" and failed["error"]["retryable"] is True


async def test_a_pipelined_job_moves_to_a_backend_that_fell_idle(
    server_factory: Any, fake: Any, fake_b: Any, tmp_path: Any
) -> None:
    for backend in (fake, fake_b):
        backend.set_timing(step_time=0.05)
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    server = await server_factory(url, [f"a={fake.url}", f"b={fake_b.url}"], backend_slots=2)
    async with server.client() as client:
        long = await submit(client, sampler_graph(steps=100, seed=1))
        assert await _running_on(client, long["id"]) == "a"
        short = await submit(client, sampler_graph(steps=20, seed=2))  # b is emptier
        tail = await submit(client, sampler_graph(steps=4, seed=3))  # waits behind long on a
        assert (await job_reaches(client, short["id"], "completed"))["backend"] == "b"
        done = await job_reaches(client, tail["id"], "completed", timeout=30)
        long_job = await job(client, long["id"])
        await client.post(f"/api/v1/jobs/{long['id']}/cancel")
        await job_reaches(client, long["id"], "cancelled")
    assert long_job["status"] == "running"  # the tail did not wait for the long job
    assert [(a["backend"], a["status"]) for a in done["attempts"]] == [
        ("a", "moved"),
        ("b", "completed"),
    ]
    assert fake.prompt_count == 1  # a ran only the long job: the tail ran once, on b
