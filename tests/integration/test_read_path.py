"""The status read path: documents held in memory (jobs/readmodel.py) must answer exactly
what the tables say, after every change, for the right owner only; API keys looked up
once are trusted for a bounded time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from atelier.auth import keys as key_service
from atelier.cli import app as cli
from atelier.errors import JobNotFound
from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually, job, job_reaches, submit
from tests.team import auth, make_key


async def _truth(server: Any, job_id: str) -> dict[str, Any]:
    """The job as the tables say, bypassing the read model."""
    view = await server.runtime.jobs.get(job_id, owner=None, base_url=server.url)
    result: dict[str, Any] = view.model_dump(mode="json")
    return result


async def test_held_status_follows_every_change(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    fake.set_timing(step_time=0.02)
    server = await server_factory(database_url, [fake.url], backend_slots=1)
    read_model = server.runtime.jobs.read_model
    async with server.client() as client:
        first = await submit(client, sampler_graph(steps=10))
        seen = [await job(client, first["id"]) for _ in range(3)]
        done = await job_reaches(client, first["id"], "completed")
        assert done == await _truth(server, first["id"])
        assert done["outputs"] and done["attempts"][0]["status"] == "completed"
        # Held once read after the last change (a read that overlapped it is not kept),
        # and still the truth. On PostgreSQL the bus reads this process's own events back
        # (batched, up to 50 ms later) and drops the copy once more: held again after that.

        async def a_held_read() -> bool:
            hits = read_model.hits
            return await job(client, first["id"]) == done and read_model.hits == hits + 1

        assert await eventually(a_held_read, timeout=10)
        assert all(s["status"] in ("queued", "running", "completed") for s in seen)

        # Deleted: the held document goes at once.
        other = await submit(client, image_graph())
        await job_reaches(client, other["id"], "completed")
        assert (await job(client, other["id"]))["status"] == "completed"  # held
        deleted = await client.delete(f"/api/v1/jobs/{other['id']}")
        assert deleted.status_code == 204
        gone = await client.get(f"/api/v1/jobs/{other['id']}")
        assert gone.status_code == 404
        assert gone.headers["content-type"].startswith("application/problem+json")


async def test_jobs_read_together_each_get_their_own_document(
    server_factory: Any, database_url: str
) -> None:
    """Misses in one turn of the loop share one transaction (jobs/readmodel.py): each
    reader must still get its own job, at its own position, and a missing id a 404."""
    server = await server_factory(database_url, [])  # no backend: everything waits
    async with server.client() as client:
        ids = [(await submit(client, image_graph(), labels={"n": str(n)}))["id"] for n in range(12)]
        jobs = server.runtime.jobs
        jobs.read_model.forget(ids, True)
        batches: list[list[str]] = []
        read = jobs._documents

        async def counted(job_ids: list[str], base_url: str) -> Any:
            batches.append(list(job_ids))
            return await read(job_ids, base_url)

        jobs._documents = counted
        # As the server sees a burst of polls: every reader asks in the same turn.
        answers = await asyncio.gather(
            *(
                jobs.status(job_id, owner=None, base_url=server.url)
                for job_id in [*ids, "no-such-job"]
            ),
            return_exceptions=True,
        )
        assert batches == [[*ids, "no-such-job"]]
        assert isinstance(answers[-1], JobNotFound)
        for n, (job_id, answer) in enumerate(zip(ids, answers, strict=False)):
            body = json.loads(answer.body)
            assert (body["id"], body["labels"], body["queue_position"]) == (
                job_id,
                {"n": str(n)},
                n,
            )
            assert body == await _truth(server, job_id)
            # and the same through the route (from memory, or on PostgreSQL perhaps read
            # again: the bus reads this process's own submits back and drops the copies)
            served = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            served.pop("warnings")
            assert served == {k: v for k, v in body.items() if k != "warnings"}


async def test_queue_positions_stay_true(server_factory: Any, database_url: str) -> None:
    server = await server_factory(database_url, [])  # no backend: everything waits
    async with server.client() as client:
        ids = [(await submit(client, image_graph(), priority=0))["id"] for _ in range(3)]
        assert [(await job(client, i))["queue_position"] for i in ids] == [0, 1, 2]
        assert (await job(client, ids[2]))["queue_position"] == 2  # held
        urgent = await submit(client, image_graph(), priority=5)
        assert urgent["queue_position"] == 0
        assert (await job(client, ids[2]))["queue_position"] == 3
        cancel = await client.post(f"/api/v1/jobs/{ids[0]}/cancel")
        assert cancel.json()["status"] == "cancelled"
        assert (await job(client, ids[2]))["queue_position"] == 2
        for job_id in [*ids, urgent["id"]]:
            answer = await job(client, job_id)
            answer.pop("warnings")  # the route's note on capacity, not the job's state
            truth = await _truth(server, job_id)
            truth.pop("warnings")
            assert answer == truth


async def test_a_queued_job_no_backend_can_take_is_answered_from_memory_with_its_warning(
    server_factory: Any, database_url: str
) -> None:
    """No backend up is when dashboards poll a queued job most: the answer carries the
    warning (body and header) and still comes from the held document, not the tables."""
    server = await server_factory(database_url, [])
    read_model = server.runtime.jobs.read_model
    async with server.client() as client:
        queued = await submit(client, image_graph())
        first = await client.get(f"/api/v1/jobs/{queued['id']}")

        async def a_held_read() -> bool:  # on PostgreSQL, once the bus's echo has passed
            hits = read_model.hits
            await client.get(f"/api/v1/jobs/{queued['id']}")
            return read_model.hits == hits + 1

        assert await eventually(a_held_read, timeout=10)
        misses = read_model.misses
        answers = [await client.get(f"/api/v1/jobs/{queued['id']}") for _ in range(5)]
        assert read_model.misses == misses  # every one of them held
        for answer in [first, *answers]:
            assert answer.status_code == 200
            assert answer.headers["atelier-warning"] == answer.json()["warnings"][0]
            assert "no ComfyUI backend" in answer.json()["warnings"][0]
            assert answer.json()["status"] == "queued"
        truth = await _truth(server, queued["id"])
        assert answers[-1].json() == {**truth, "warnings": answers[-1].json()["warnings"]}


async def test_a_held_job_stays_hidden_from_other_owners(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=admin)
        bob = await make_key(client, "bob", "submit", admin_key=admin)
        response = await client.post(
            "/api/v1/jobs", json={"graph": image_graph()}, headers=auth(alice)
        )
        job_id = response.json()["id"]
        for _ in range(2):  # the second answer comes from memory
            mine = await client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice))
            assert mine.status_code == 200
        theirs = await client.get(f"/api/v1/jobs/{job_id}", headers=auth(bob))
        assert theirs.status_code == 404
        assert theirs.json()["type"].endswith("job-not-found")
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=auth(admin))).status_code == 200


async def test_a_key_revoked_by_the_cli_stops_within_the_cache_bound(
    server_factory: Any, fake: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_service, "CACHE_SECONDS", 0.3)
    data_dir = tmp_path / "atelier"
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url], data_dir=data_dir
    )
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        user = await make_key(client, "alice", "read", admin_key=admin)
        assert (await client.get("/api/v1/jobs", headers=auth(user))).status_code == 200
        keys = (await client.get("/api/v1/admin/keys", headers=auth(admin))).json()["items"]
        user_id = next(k["id"] for k in keys if k["name"] == "alice")
        # The CLI revokes it, straight on the database (in a thread: it runs its own loop).
        revoked = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "keys",
                "revoke",
                user_id,
                "--data-dir",
                str(data_dir),
                "--database-url",
                f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
            ],
        )
        assert revoked.exit_code == 0, revoked.output

        async def refused() -> bool:
            response = await client.get("/api/v1/jobs", headers=auth(user))
            return response.status_code == 401

        await eventually(refused, timeout=5)
