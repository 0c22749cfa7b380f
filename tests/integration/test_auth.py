"""Keys, scopes and ownership: nobody sees or touches another owner's work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from atelier.cli import app as cli
from tests.graphs import image_graph, sampler_graph
from tests.helpers import job_reaches, read_sse
from tests.team import auth, make_key

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://atelier.dev/problems/{slug}"
    return body


async def test_owners_cannot_see_or_touch_each_others_jobs(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(database_url, [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=admin)
        bob = await make_key(client, "bob", "submit", admin_key=admin)

        # Anonymous callers are refused once a key exists; /health and /ready stay open.
        refused = _problem(await client.get("/api/v1/jobs"), 401, "unauthorized")
        assert "key" in refused["detail"]
        assert (await client.get("/api/v1/jobs")).headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/health")).status_code == 200

        response = await client.post(
            "/api/v1/jobs",
            json={"graph": image_graph()},
            headers={**auth(alice), "Prefer": "wait=20"},
        )
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["status"] == "completed"
        job_id, artifact_id = job["id"], job["outputs"][0]["id"]
        as_bob = auth(bob)
        # Bob's own job, and the all-events stream: he sees only his own.
        bobs = await submit_as(client, bob, image_graph(color=7))
        async with server.client(headers=as_bob) as bobs_client:
            await job_reaches(bobs_client, bobs, "completed")
        events = await read_sse(client, "/api/v1/events?after=0", headers=as_bob, limit=3)
        assert {e["job_id"] for e in events} == {bobs}
        running = await submit_as(client, alice, sampler_graph(steps=2000))

        _problem(await client.get(f"/api/v1/jobs/{job_id}", headers=as_bob), 404, "job-not-found")
        bobs_list = (await client.get("/api/v1/jobs", headers=as_bob)).json()["items"]
        assert [j["id"] for j in bobs_list] == [bobs]
        for method, path in [
            ("POST", f"/api/v1/jobs/{running}/cancel"),
            ("POST", f"/api/v1/jobs/{job_id}/retry"),
            ("DELETE", f"/api/v1/jobs/{job_id}"),
            ("GET", f"/api/v1/jobs/{job_id}/events"),
        ]:
            response = await client.request(method, path, headers=as_bob)
            _problem(response, 404, "job-not-found")
        _problem(
            await client.get(f"/api/v1/artifacts/{artifact_id}", headers=as_bob),
            404,
            "artifact-not-found",
        )

        # Alice and the admin see Alice's job; the admin can cancel it.
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice))).status_code == 200
        listing = (await client.get("/api/v1/jobs", headers=auth(admin))).json()["items"]
        assert {j["id"] for j in listing} == {job_id, running, bobs}
        cancelled = await client.post(f"/api/v1/jobs/{running}/cancel", headers=auth(admin))
        assert cancelled.status_code == 200, cancelled.text
        audit = (await client.get("/api/v1/admin/audit", headers=auth(admin))).json()["items"]
        actions = [entry["action"] for entry in audit]
        assert "POST /api/v1/jobs/{job_id}/cancel" in actions
        assert actions.count("key.create") == 3

        # The WebSocket follows the same rules (close codes 4401, 4404).
        await _ws_refused(server.url, f"/api/v1/jobs/{job_id}/ws", 4401)
        await _ws_refused(server.url, f"/api/v1/jobs/{job_id}/ws?access_token={bob}", 4404)

        # And Bob cannot delete it either; Alice can.
        deleted = await client.delete(f"/api/v1/jobs/{job_id}", headers=auth(alice))
        assert deleted.status_code == 204


async def submit_as(client: httpx.AsyncClient, key: str, graph: dict[str, Any]) -> str:
    response = await client.post("/api/v1/jobs", json={"graph": graph}, headers=auth(key))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def _ws_refused(base: str, path: str, code: int) -> None:
    import websockets

    url = base.replace("http://", "ws://") + path
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url) as socket:
            await socket.recv()
    # Refused before the handshake completes: the close code travels as 403 + reason.
    assert refused.value.response.status_code == 403


async def test_scopes_and_revocation(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        writer = await make_key(client, "carol", "submit", admin_key=admin)
        reader = await make_key(client, "carol", "read", admin_key=admin)

        body = _problem(
            await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(reader)),
            403,
            "insufficient-scope",
        )
        assert body["required_scope"] == "submit"
        job_id = await submit_as(client, writer, image_graph())
        # A read key of the same owner reads the job; it cannot cancel it.
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=auth(reader))).status_code == 200
        _problem(
            await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(reader)),
            403,
            "insufficient-scope",
        )
        _problem(
            await client.get("/api/v1/admin/keys", headers=auth(writer)), 403, "insufficient-scope"
        )
        _problem(
            await client.get("/api/v1/jobs", headers=auth("atk_nonsense")), 401, "unauthorized"
        )
        _problem(
            await client.get("/api/v1/jobs", headers={"Authorization": "Basic x"}),
            401,
            "unauthorized",
        )

        keys = (await client.get("/api/v1/admin/keys", headers=auth(admin))).json()["items"]
        assert all("key" not in k and "key_hash" not in k for k in keys)
        writer_id = next(k["id"] for k in keys if k["scopes"] == ["submit"])
        assert (await client.get("/api/v1/jobs", headers=auth(writer))).status_code == 200
        revoked = await client.delete(f"/api/v1/admin/keys/{writer_id}", headers=auth(admin))
        assert revoked.status_code == 204
        _problem(await client.get("/api/v1/jobs", headers=auth(writer)), 401, "unauthorized")
        _problem(
            await client.delete(f"/api/v1/admin/keys/{writer_id}x", headers=auth(admin)),
            404,
            "key-not-found",
        )
        audit = (await client.get("/api/v1/admin/audit", headers=auth(admin))).json()["items"]
        assert audit[0]["action"] == "key.revoke" and audit[0]["actor"] == "root"


async def test_signed_artifact_links(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=admin)
        job = (
            await client.post(
                "/api/v1/jobs",
                json={"graph": image_graph()},
                headers={**auth(alice), "Prefer": "wait=20"},
            )
        ).json()
        output = job["outputs"][0]
        assert "sig=" in output["url"] and "expires=" in output["url"]
        plain = f"/api/v1/artifacts/{output['id']}"
        signed = await client.get(output["url"])  # no key at all: a browser or a CDN
        assert signed.status_code == 200 and signed.headers["content-type"] == "image/png"
        assert 'filename="' in signed.headers["content-disposition"]
        with_key = await client.get(plain, headers=auth(alice))
        assert with_key.content == signed.content
        _problem(await client.get(plain), 401, "unauthorized")
        tampered = output["url"].replace("sig=", "sig=0")[:-1]
        _problem(await client.get(tampered), 403, "signature-invalid")
        other = plain.replace(output["id"][:8], "00000000") + "?" + output["url"].split("?")[1]
        _problem(await client.get(other), 403, "signature-invalid")
        expired = f"{plain}?expires=1000&sig={'0' * 64}"
        _problem(await client.get(expired), 403, "signature-invalid")


@pytest.mark.parametrize("mode", ["required", "open"])
async def test_auth_modes(server_factory: Any, fake: Any, tmp_path: Path, mode: str) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url], auth_mode=mode
    )
    async with server.client() as client:
        response = await client.get("/api/v1/jobs")
        assert response.status_code == (401 if mode == "required" else 200)
        assert (await client.get("/ready")).status_code in (200, 503)


def test_cli_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    made = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "--name",
            "ci",
            "--scope",
            "submit",
            "--scope",
            "read",
            "--max-queued",
            "5",
            *data,
        ],
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("atk_")
    listed = runner.invoke(cli, ["keys", "list", "--json", *data])
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.output)
    assert entry["name"] == "ci" and entry["scopes"] == ["read", "submit"]
    assert entry["max_queued"] == 5 and key not in listed.output
    revoked = runner.invoke(cli, ["keys", "revoke", entry["id"], *data])
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(runner.invoke(cli, ["keys", "list", "--json", *data]).output) == []
    bad = runner.invoke(cli, ["keys", "create", "--name", "../x", "--scope", "read", *data])
    assert bad.exit_code != 0
