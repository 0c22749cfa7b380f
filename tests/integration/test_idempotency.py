"""Idempotency-Key: a retried submit never makes a second job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.graphs import image_graph
from tests.team import auth, make_key


async def test_same_key_same_job_other_body_409(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    server = await server_factory(database_url, [fake.url])
    async with server.client() as client:
        body = {"graph": image_graph(), "labels": {"run": "1"}}
        first = await client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 202, first.text
        # The same body with its keys in another order is the same request.
        again = await client.post(
            "/api/v1/jobs",
            json={"labels": {"run": "1"}, "graph": image_graph()},
            headers={"Idempotency-Key": "k-1"},
        )
        assert again.status_code == 202
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"

        other = await client.post(
            "/api/v1/jobs",
            json={"graph": image_graph(color=1)},
            headers={"Idempotency-Key": "k-1"},
        )
        assert other.status_code == 409
        assert other.json()["type"].endswith("/idempotency-key-reused")

        # Concurrent duplicates: one job.
        answers = await asyncio.gather(
            *[
                client.post(
                    "/api/v1/jobs",
                    json={"graph": image_graph()},
                    headers={"Idempotency-Key": "k-2"},
                )
                for _ in range(8)
            ]
        )
        assert {a.status_code for a in answers} == {202}
        assert len({a.json()["id"] for a in answers}) == 1

        jobs = (await client.get("/api/v1/jobs")).json()["items"]
        assert len(jobs) == 2


async def test_keys_are_per_owner(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=admin)
        bob = await make_key(client, "bob", "submit", admin_key=admin)
        ids = []
        for key in (alice, bob):
            response = await client.post(
                "/api/v1/jobs",
                json={"graph": image_graph()},
                headers={**auth(key), "Idempotency-Key": "shared"},
            )
            assert response.status_code == 202
            ids.append(response.json()["id"])
        assert ids[0] != ids[1]
        # A failed submit does not keep the key: the corrected request goes through.
        bad = {"graph": {"1": {"class_type": "Nope", "inputs": {}}}}
        headers = {**auth(alice), "Idempotency-Key": "fix-me"}
        assert (await client.post("/api/v1/jobs", json=bad, headers=headers)).status_code == 422
        good = await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=headers)
        assert good.status_code == 202
        too_long = await client.post(
            "/api/v1/jobs",
            json={"graph": image_graph()},
            headers={**auth(alice), "Idempotency-Key": "x" * 300},
        )
        assert too_long.status_code == 422
