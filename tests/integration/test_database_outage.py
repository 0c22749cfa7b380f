"""PostgreSQL restarting under a running server: jobs finish, the API answers 503.

Found by the chaos suite (bench/chaos.py): a runner whose job ended while the database was
down failed the job as "internal" (or died, leaving it running for good), and every API
call answered a 500. Each test runs its own PostgreSQL cluster, which it may stop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from atelier.testing.postgres import PrivatePostgres, postgres_bin
from tests.graphs import sampler_graph
from tests.helpers import eventually, job, job_reaches, submit


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if postgres_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required on CI")
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    cluster = PrivatePostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


async def test_job_ending_while_the_database_is_down_completes_once_it_is_back(
    server_factory: Any, fake: Any, private_postgres: PrivatePostgres
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(private_postgres.url, [f"a={fake.url}"])
    async with server.client() as client:
        submitted = await submit(client, sampler_graph(steps=30))

        async def running() -> bool:
            body = await job(client, submitted["id"])
            return body["status"] == "running" and (body["step"] or 0) >= 1

        await eventually(running)
        await asyncio.to_thread(private_postgres.stop, "immediate")

        async def finished_on_backend() -> bool:
            async with httpx.AsyncClient(base_url=fake.url) as comfy:
                return bool((await comfy.get("/history")).json())

        await eventually(finished_on_backend, timeout=30)
        await asyncio.sleep(1.0)  # the runner meets the dead database now
        await asyncio.to_thread(private_postgres.start)
        done = await job_reaches(client, submitted["id"], "completed", "failed", timeout=60)
    assert done["status"] == "completed", done["error"]
    assert [a["status"] for a in done["attempts"]] == ["completed"]
    assert len(done["outputs"]) == 1


async def test_api_answers_503_while_the_database_is_down(
    server_factory: Any, fake: Any, private_postgres: PrivatePostgres
) -> None:
    server = await server_factory(private_postgres.url, [f"a={fake.url}"])
    async with server.client() as client:
        first = await submit(client, sampler_graph(steps=1))
        await job_reaches(client, first["id"], "completed")
        await asyncio.to_thread(private_postgres.stop, "immediate")
        try:
            posted = await client.post(
                "/api/v1/jobs",
                json={"graph": sampler_graph(steps=1)},
                headers={"Idempotency-Key": "outage-1"},
            )
            listed = await client.get("/api/v1/jobs")
            # A finished job never changes: its status may still come from memory.
            cached = await client.get(f"/api/v1/jobs/{first['id']}")
        finally:
            await asyncio.to_thread(private_postgres.start)
        assert cached.status_code in (200, 503), cached.text
        for response in (posted, listed):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/database-unavailable")
            assert response.headers["retry-after"] == "2"

        async def accepted() -> httpx.Response | None:
            response = await client.post(
                "/api/v1/jobs",
                json={"graph": sampler_graph(steps=1)},
                headers={"Idempotency-Key": "outage-1"},
            )
            return response if response.status_code == 202 else None

        again = await eventually(accepted, timeout=30, interval=0.5)
        done = await job_reaches(client, again.json()["id"], "completed")
        listed = (await client.get("/api/v1/jobs")).json()["items"]
    assert len(done["outputs"]) == 1
    assert len(listed) == 2  # the refused submit created nothing
