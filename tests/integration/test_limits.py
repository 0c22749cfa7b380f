"""Rate limits and quotas answer 429 with Retry-After and name the limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually, job_reaches
from tests.team import auth, make_key


def _too_many(response: Any, slug: str, limit: str) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://atelier.dev/problems/{slug}"
    assert body["limit"] == limit and body["retryable"] is True
    return body


async def test_rate_limit_per_key(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        slow = await make_key(client, "slow", "read", admin_key=admin, rate_limit=3)
        for _ in range(3):
            assert (await client.get("/api/v1/jobs", headers=auth(slow))).status_code == 200
        body = _too_many(
            await client.get("/api/v1/jobs", headers=auth(slow)),
            "rate-limited",
            "requests_per_minute",
        )
        assert body["allowed"] == 3
        # Another key is counted on its own.
        assert (await client.get("/api/v1/jobs", headers=auth(admin))).status_code == 200


async def test_queued_jobs_and_bytes_quotas(server_factory: Any, tmp_path: Path, fake: Any) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        small = await make_key(client, "small", "submit", admin_key=admin, max_artifact_bytes=1)
        done = await client.post(
            "/api/v1/jobs",
            json={"graph": image_graph()},
            headers={**auth(small), "Prefer": "wait=20"},
        )
        assert done.json()["status"] == "completed"
        _too_many(
            await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(small)),
            "quota-exceeded",
            "artifact_bytes",
        )
        # Deleting the finished job frees the space.
        await client.delete(f"/api/v1/jobs/{done.json()['id']}", headers=auth(small))
        assert (
            await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(small))
        ).status_code == 202

    # No backend: jobs stay queued.
    idle = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", [], max_queued_per_owner=2
    )
    async with idle.client() as client:
        admin = await make_key(client, "root", "admin")
        busy = await make_key(client, "busy", "submit", admin_key=admin)
        for _ in range(2):
            r = await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(busy))
            assert r.status_code == 202, r.text
        body = _too_many(
            await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(busy)),
            "quota-exceeded",
            "queued_jobs",
        )
        assert body["current"] == 2 and body["allowed"] == 2


async def test_running_quota_holds_in_the_scheduler(
    server_factory: Any, fake: Any, fake_b: Any, tmp_path: Path
) -> None:
    fake.set_timing(step_time=0.05)
    fake_b.set_timing(step_time=0.05)
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [f"a={fake.url}", f"b={fake_b.url}"]
    )
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        one = await make_key(client, "one-at-a-time", "submit", admin_key=admin, max_running=1)
        headers = auth(one)
        ids = []
        for seed in range(2):
            r = await client.post(
                "/api/v1/jobs", json={"graph": sampler_graph(steps=30, seed=seed)}, headers=headers
            )
            ids.append(r.json()["id"])

        async def states() -> list[str]:
            return [
                (await client.get(f"/api/v1/jobs/{i}", headers=headers)).json()["status"]
                for i in ids
            ]

        assert await eventually(lambda: _has(states, "running"))
        # Two idle backends, but the key may run one job at a time.
        for _ in range(10):
            assert (await states()).count("running") <= 1
        async with server.client(headers=headers) as own:
            for job_id in ids:
                await job_reaches(own, job_id, "completed", timeout=30)


async def _has(states: Any, status: str) -> bool:
    return status in await states()
