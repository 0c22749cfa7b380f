"""What a newcomer meets first: warnings instead of silence, ids that work, honest waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.graphs import image_graph
from tests.helpers import job_reaches, submit


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'first.db'}"


async def test_no_backend_says_so_in_the_answer(server_factory: Any, tmp_path: Path) -> None:
    server = await server_factory(sqlite(tmp_path), [])
    async with server.client() as client:
        response = await client.post("/api/v1/jobs", json={"graph": image_graph(size=8)})
        read = await client.get(f"/api/v1/jobs/{response.json()['id']}")
        info = (await client.get("/")).json()
    assert response.status_code == 202
    (warning,) = response.json()["warnings"]
    assert "no ComfyUI backend is configured" in warning
    assert response.headers["atelier-warning"] == warning
    assert read.json()["warnings"] == [warning]
    assert info["warnings"] == [warning]


async def test_a_job_has_no_warnings_when_a_backend_runs_it(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}"])
    async with server.client() as client:
        job = await submit(client, image_graph(size=8))
        done = await job_reaches(client, job["id"], "completed")
        info = (await client.get("/")).json()
    assert job["warnings"] == [] and done["warnings"] == []
    assert "warnings" not in info


async def test_a_job_is_found_by_the_prompt_id_of_any_attempt(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}"])
    async with server.client() as client:
        job = await submit(client, image_graph(size=8))
        first = await job_reaches(client, job["id"], "completed")
        await client.post(f"/api/v1/jobs/{job['id']}/retry")  # completed: refused, fine
        prompt_id = first["attempts"][0]["prompt_id"]
        by_prompt = await client.get(f"/api/v1/jobs/{prompt_id}")
        unknown = await client.get("/api/v1/jobs/not-a-prompt")
    assert prompt_id != job["id"]
    assert by_prompt.status_code == 200 and by_prompt.json()["id"] == job["id"]
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/job-not-found")


async def test_prompt_ids_do_not_reach_another_owners_job(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    from tests.team import auth, make_key

    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}"])
    async with server.client() as client:
        root = await make_key(client, "root", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=root)
        bob = await make_key(client, "bob", "submit", admin_key=root)
        response = await client.post(
            "/api/v1/jobs", json={"graph": image_graph(size=8)}, headers=auth(alice)
        )
        job_id = response.json()["id"]
        done = await job_reaches_as(client, job_id, alice)
        prompt_id = done["attempts"][0]["prompt_id"]
        as_bob = await client.get(f"/api/v1/jobs/{prompt_id}", headers=auth(bob))
        as_alice = await client.get(f"/api/v1/jobs/{prompt_id}", headers=auth(alice))
    assert as_bob.status_code == 404
    assert as_alice.json()["id"] == job_id


async def job_reaches_as(client: Any, job_id: str, key: str) -> dict[str, Any]:
    from tests.helpers import eventually
    from tests.team import auth

    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await client.get(f"/api/v1/jobs/{job_id}", headers=auth(key))
        ).json()
        return body if body["status"] == "completed" else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_unknown_query_parameters_are_a_400_everywhere(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}"])
    async with server.client() as client:
        job = await submit(client, image_graph(size=8))
        done = await job_reaches(client, job["id"], "completed")
        artifact = done["outputs"][0]
        cases = {
            "/api/v1/jobs?stauts=failed": "stauts",
            f"/api/v1/jobs/{job['id']}?verbose=1": "verbose",
            "/api/v1/workflows?foo=bar": "foo",
            "/api/v1/backends?x=1": "x",
            "/api/v1/health?deep=true": "deep",
        }
        for path, name in cases.items():
            response = await client.get(path)
            assert response.status_code == 400, (path, response.text)
            problem = response.json()
            assert problem["type"].endswith("/unknown-query-parameter"), problem
            assert problem["errors"][0]["field"] == name
        posted = await client.post("/api/v1/jobs?priorty=5", json={"graph": image_graph(size=8)})
        listing = await client.get("/api/v1/jobs?status=completed&limit=5")
        signed = await client.get(artifact["url"])  # ?expires=&sig= stay allowed
        after = await client.get("/api/v1/jobs?status=queued")
    assert posted.status_code == 400
    assert after.json()["items"] == []  # the refused submit changed nothing
    assert listing.status_code == 200 and listing.json()["items"][0]["id"] == job["id"]
    assert signed.status_code == 200


async def test_prefer_wait_beyond_the_cap_says_so(server_factory: Any, tmp_path: Path) -> None:
    server = await server_factory(sqlite(tmp_path), [], max_wait_seconds=0.2)
    async with server.client() as client:
        response = await client.post(
            "/api/v1/jobs", json={"graph": image_graph(size=8)}, headers={"Prefer": "wait=30"}
        )
        within = await client.post(
            "/api/v1/jobs", json={"graph": image_graph(size=8)}, headers={"Prefer": "wait=0.1"}
        )
    assert response.status_code == 202
    assert response.headers["preference-applied"] == "wait=0.2"
    cut = [w for w in response.json()["warnings"] if "wait=30" in w]
    assert cut and "cap" in cut[0] and "0.2" in cut[0]
    assert not [w for w in within.json()["warnings"] if "Prefer" in w]
