"""Idempotency-Key across a crash: a claim whose request died is taken over.

Found by the chaos suite (bench/chaos.py): Atelier SIGKILLed between claiming a key and
recording the job left the key claimed with no job for its whole TTL, so every retry got
409 idempotency-key-in-use (and a job created just before the kill was never told to the
client). The claim now carries the job's id from the start.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from atelier.auth.idempotency import TAKEOVER_AFTER, fingerprint
from atelier.db.security import IdempotencyRepository
from atelier.db.tables import IdempotencyRow, utcnow
from atelier.jobs.views import JobCreate
from tests.graphs import image_graph
from tests.helpers import job_reaches

ROUTE = "POST /api/v1/jobs"


async def _leave_claim(server: Any, key: str, body: dict[str, Any], age: float) -> str:
    """What a request killed after its claim leaves behind: a claim, and no job."""
    digest = fingerprint(ROUTE, JobCreate.model_validate(body).model_dump(mode="json"))
    claimed_at = utcnow() - timedelta(seconds=age)
    job_id = "0b9e6f7c-0000-4000-8000-00000000c1a1"
    async with server.runtime.database.transaction() as session:
        await IdempotencyRepository(session).claim(
            IdempotencyRow(
                owner="",
                key=key,
                fingerprint=digest,
                job_id=job_id,
                created_at=claimed_at,
                expires_at=claimed_at + timedelta(days=1),
            )
        )
    return job_id


async def test_a_dead_claim_is_taken_over_under_its_job_id(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    server = await server_factory(database_url, [fake.url])
    body = {"graph": image_graph()}
    claimed_id = await _leave_claim(server, "crashed-1", body, age=TAKEOVER_AFTER + 5)
    async with server.client() as client:
        retried = await client.post(
            "/api/v1/jobs", json=body, headers={"Idempotency-Key": "crashed-1"}
        )
        assert retried.status_code == 202, retried.text
        assert retried.json()["id"] == claimed_id
        assert "idempotent-replayed" not in retried.headers
        again = await client.post(
            "/api/v1/jobs", json=body, headers={"Idempotency-Key": "crashed-1"}
        )
        assert again.json()["id"] == claimed_id
        assert again.headers["idempotent-replayed"] == "true"
        await job_reaches(client, claimed_id, "completed")
        listed = (await client.get("/api/v1/jobs")).json()["items"]
    assert [j["id"] for j in listed] == [claimed_id]


async def test_a_young_claim_is_waited_for_and_concurrent_takeovers_make_one_job(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    server = await server_factory(database_url, [fake.url])
    body = {"graph": image_graph(color=7)}
    claimed_id = await _leave_claim(server, "crashed-2", body, age=TAKEOVER_AFTER - 1.5)
    async with server.client() as client:
        # Young: the duplicates wait; once the claim is old enough, they all take it over
        # at once, and the job id (a primary key) lets exactly one of them create it.
        answers = await asyncio.gather(
            *[
                client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "crashed-2"})
                for _ in range(4)
            ]
        )
        listed = (await client.get("/api/v1/jobs")).json()["items"]
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert {a.json()["id"] for a in answers} == {claimed_id}
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert [j["id"] for j in listed] == [claimed_id]
