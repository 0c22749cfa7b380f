"""The cluster shape with real processes: an API replica (shape=cluster, dispatches
nothing), ``atelier worker`` subprocesses each next to its own fake ComfyUI, the real
PostgreSQL. Jobs go through the elected scheduler and per-worker procrastinate queues."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from atelier.db.workers import SCHEDULER_LOCK
from atelier.telemetry import health
from tests.cluster import CLUSTER_FAST, Workers, alive_workers, worker_rows
from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually, job, job_reaches, submit
from tests.private_postgres import PrivatePostgres, serve_private_postgres
from tests.team import auth, make_key

pytestmark = pytest.mark.postgres


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(postgres_url, tmp_path / "atelier")
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    yield from serve_private_postgres()


async def start_replica(server_factory: Any, postgres_url: str, **extra: Any) -> Any:
    return await server_factory(postgres_url, [], shape="cluster", **{**CLUSTER_FAST, **extra})


async def test_workers_run_the_jobs(
    server_factory: Any, postgres_url: str, fake: Any, fake_b: Any, workers: Workers
) -> None:
    replica = await start_replica(server_factory, postgres_url)
    async with replica.client() as client:
        assert (await client.get("/ready")).status_code == 503  # no worker yet
        # The replica has no ComfyUI of its own: what it warns of is workers, not backends.
        info = await eventually(lambda: _info_with(client, "warnings"))
        assert info["shape"] == "cluster" and info["warnings"] == [health.NO_WORKER]
    workers.start("gpu-a", fake.url)
    workers.start("gpu-b", fake_b.url)
    await eventually(lambda: _both_alive(postgres_url), timeout=60)
    async with replica.client() as client:
        info = await eventually(lambda: _info_with_workers(client, 2))
        assert "warnings" not in info and info["backends"] == 2
        report = await client.get("/api/v1/health")
        assert report.status_code == 200 and report.json()["status"] == "healthy"
        assert [b["name"] for b in report.json()["backends"]] == ["gpu-a", "gpu-b"]
        submitted = [
            await submit(client, image_graph(color=0x101010 * (i + 1), size=24)) for i in range(6)
        ]
        assert not any(s.get("warnings") for s in submitted)
        done = [await job_reaches(client, s["id"], "completed", "failed") for s in submitted]
        listed = (await client.get("/api/v1/backends")).json()["items"]
        ready = await client.get("/ready")
        metrics = (await client.get("/metrics")).text
    for name in ("gpu-a", "gpu-b"):  # the workers, as the replica's Prometheus sees them
        assert f'atelier_backend_up{{backend="{name}"}} 1.0' in metrics
    assert ready.status_code == 200 and ready.json()["backends_up"] == 2  # live workers
    assert [(b["name"], b["status"], b["slots"]) for b in listed] == [
        ("gpu-a", "up", 2),
        ("gpu-b", "up", 2),
    ]
    assert all(b["vram_total"] and b["vram_free"] is not None for b in listed)
    assert {b["loaded_model"] for b in listed} <= {None, "v1-5-pruned-emaonly.safetensors"}
    assert [d["status"] for d in done] == ["completed"] * 6, [d["error"] for d in done]
    assert {d["backend"] for d in done} == {"gpu-a", "gpu-b"}
    assert fake.prompt_count + fake_b.prompt_count == 6
    rows = {row["name"]: row for row in await worker_rows(postgres_url)}
    assert rows["gpu-a"]["url"] == fake.url and rows["gpu-a"]["slots"] == 2
    assert rows["gpu-a"]["state"] == "up"
    assert '"vram_total"' in rows["gpu-a"]["system_stats"]  # the backend's health and VRAM


async def _info_with(client: Any, key: str) -> dict[str, Any] | None:
    info: dict[str, Any] = (await client.get("/")).json()
    return info if key in info else None


async def _info_with_workers(client: Any, up: int) -> dict[str, Any] | None:
    info: dict[str, Any] = (await client.get("/")).json()
    return info if info["backends_up"] == up else None


async def _both_alive(postgres_url: str) -> bool:
    return await alive_workers(postgres_url) == ["gpu-a", "gpu-b"]


async def test_a_killed_worker_loses_its_job_to_another(
    server_factory: Any, postgres_url: str, fake: Any, fake_b: Any, workers: Workers
) -> None:
    fake.set_timing(step_time=0.2)
    fake_b.set_timing(step_time=0.2)
    replica = await start_replica(server_factory, postgres_url)
    started = {
        "gpu-a": workers.start("gpu-a", fake.url),
        "gpu-b": workers.start("gpu-b", fake_b.url),
    }
    await eventually(lambda: _both_alive(postgres_url), timeout=60)
    async with replica.client() as client:
        first = await submit(client, sampler_graph(steps=15))
        running = await job_reaches(client, first["id"], "running")

        async def progressing() -> Any:
            current = await job(client, first["id"])
            return current if (current["progress"] or 0) > 0 else None

        running = await eventually(progressing)
        doomed = running["backend"]
        started[doomed].kill()
        finished = await job_reaches(client, first["id"], "completed", "failed", timeout=90)
    assert finished["status"] == "completed", finished["error"]
    assert finished["backend"] != doomed
    assert finished["attempt"] == 2
    assert [a["status"] for a in finished["attempts"]] == ["lost", "completed"]
    assert "stopped heartbeating" in finished["attempts"][0]["error"]["message"]


async def test_a_worker_restarted_within_its_lease_reattaches_to_its_prompt(
    server_factory: Any, postgres_url: str, fake: Any, tmp_path: Path
) -> None:
    """SIGKILLed mid-job and started again before its lease runs out, the worker finds
    its prompt still running on its ComfyUI and follows it: one attempt, one execution."""
    fake.set_timing(step_time=0.2)
    lease = {"worker_lease_timeout": 30.0}
    workers = Workers(postgres_url, tmp_path / "atelier", **lease)
    try:
        replica = await start_replica(server_factory, postgres_url, **lease)
        worker = workers.start("gpu-a", fake.url)
        await eventually(lambda: _alive(postgres_url, ["gpu-a"]), timeout=60)
        async with replica.client() as client:
            first = await submit(client, sampler_graph(steps=25))  # about 5 s on the fake

            async def progressing() -> Any:
                current = await job(client, first["id"])
                return current if (current["progress"] or 0) > 0 else None

            await eventually(progressing)
            worker.kill()
            worker.start()
            finished = await job_reaches(client, first["id"], "completed", "failed", timeout=90)
    finally:
        workers.stop_all()
    assert finished["status"] == "completed", finished["error"]
    assert finished["attempt"] == 1
    assert [a["status"] for a in finished["attempts"]] == ["completed"]
    assert fake.prompt_count == 1  # followed, not sent again
    assert [o["filename"] for o in finished["outputs"]]  # and its outputs collected


async def _alive(postgres_url: str, names: list[str]) -> bool:
    return await alive_workers(postgres_url) == names


async def test_cancel_on_another_replica_stops_the_job_on_its_worker(
    server_factory: Any, postgres_url: str, fake: Any, workers: Workers
) -> None:
    fake.set_timing(step_time=0.2)
    first = await start_replica(server_factory, postgres_url)
    second = await start_replica(server_factory, postgres_url)
    workers.start("gpu-a", fake.url)
    async with first.client() as a, second.client() as b:
        created = await submit(a, sampler_graph(steps=200))

        async def started() -> Any:
            current = await job(a, created["id"])
            return current if (current["progress"] or 0) > 0 else None

        await eventually(started, timeout=60)
        answer = await b.post(f"/api/v1/jobs/{created['id']}/cancel")
        assert answer.status_code == 200, answer.text
        ended = await job_reaches(a, created["id"], "completed", "failed", "cancelled", timeout=30)
    assert ended["status"] == "cancelled"
    assert ended["progress"] < 1.0  # it stopped on the worker, not at the end


async def test_per_key_caps_hold_when_a_worker_leads(
    server_factory: Any, postgres_url: str, fake: Any, fake_b: Any, workers: Workers
) -> None:
    """The replica stands by while workers live, so a worker schedules: it has no key
    service, and must still read a key's running cap from the keys table."""
    fake.set_timing(step_time=0.05)
    fake_b.set_timing(step_time=0.05)
    replica = await start_replica(server_factory, postgres_url)
    workers.start("gpu-a", fake.url)
    workers.start("gpu-b", fake_b.url)
    await eventually(lambda: _both_alive(postgres_url), timeout=60)
    scheduler = replica.runtime.dispatcher.scheduler

    async def a_worker_leads() -> bool:
        return not scheduler.leading.is_set() and await _scheduler_lock_held(postgres_url)

    await eventually(a_worker_leads, timeout=30)
    async with replica.client() as client:
        admin = await make_key(client, "root", "admin")
        capped = await make_key(client, "one-at-a-time", "submit", admin_key=admin, max_running=1)
        ids = []
        for seed in range(4):
            answer = await client.post(
                "/api/v1/jobs",
                json={"graph": sampler_graph(steps=8, seed=seed)},
                headers=auth(capped),
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        most_running = 0
        while True:
            states = [
                (await client.get(f"/api/v1/jobs/{i}", headers=auth(capped))).json()["status"]
                for i in ids
            ]
            most_running = max(most_running, states.count("running"))
            if all(state in ("completed", "failed") for state in states):
                break
            await asyncio.sleep(0.02)
        assert not scheduler.leading.is_set()  # a worker scheduled all along
    assert states == ["completed"] * 4
    assert most_running == 1  # two workers with two free slots each, and the cap held


async def _scheduler_lock_held(postgres_url: str) -> bool:
    connection = await asyncpg.connect(
        postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        held = await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted",
            SCHEDULER_LOCK,
        )
    finally:
        await connection.close()
    return bool(held)


async def test_postgres_restart_under_load(
    server_factory: Any, private_postgres: PrivatePostgres, fake: Any, tmp_path: Path
) -> None:
    """PostgreSQL (a private cluster) restarts while jobs run: the replica and the worker
    reconnect by themselves, every job completes, and no prompt runs twice."""
    fake.set_timing(step_time=0.05)
    database_url = private_postgres.url
    replica = await start_replica(server_factory, database_url)
    workers = Workers(database_url, tmp_path / "atelier")
    try:
        workers.start("gpu-a", fake.url)
        await eventually(lambda: _alive(database_url, ["gpu-a"]), timeout=60)
        async with replica.client() as client:
            first = [await submit(client, sampler_graph(steps=10, seed=i)) for i in range(4)]
            await job_reaches(client, first[0]["id"], "running")
            private_postgres.pg_ctl("restart", "-m", "fast")
            second = []
            for i in range(4):
                second.append(await eventually(lambda i=i: _submit_once(client, i), timeout=30))
            ids = [j["id"] for j in first + second]
            done = [await job_reaches(client, j, "completed", "failed", timeout=90) for j in ids]
    finally:
        workers.stop_all()
    assert [d["status"] for d in done] == ["completed"] * 8, [d["error"] for d in done]
    assert fake.prompt_count == 8  # none ran twice


async def _alive(database_url: str, names: list[str]) -> bool:
    return await alive_workers(database_url) == names


async def _submit_once(client: Any, seed: int) -> dict[str, Any] | None:
    answer = await client.post(
        "/api/v1/jobs", json={"graph": sampler_graph(steps=10, seed=100 + seed)}
    )
    return answer.json() if answer.status_code == 202 else None
