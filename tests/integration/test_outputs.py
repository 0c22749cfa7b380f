"""GET /api/v1/outputs: every output of the jobs a caller may see, newest first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atelier.testing import ThreadedFakeComfyUI
from tests.graphs import animated_graph, image_graph
from tests.helpers import job_reaches
from tests.team import auth, make_key


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_outputs_by_owner_workflow_kind_and_page(
    database: str,
    request: pytest.FixtureRequest,
    server_factory: Any,
    fake: ThreadedFakeComfyUI,
    tmp_path: Path,
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    server = await server_factory(url, [fake.url])
    async with server.client() as client:
        admin = await make_key(client, "ops", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=admin)
        bob = await make_key(client, "bob", "submit", admin_key=admin)

        async def run(key: str, body: dict[str, Any], path: str = "/api/v1/jobs") -> Any:
            response = await client.post(path, json=body, headers=auth(key))
            assert response.status_code == 202, response.text
            return await job_reaches(client, response.json()["id"], "completed")

        client.headers.update(auth(admin))
        plain = await run(alice, {"graph": image_graph(size=40)})
        animated = await run(alice, {"graph": animated_graph()})
        blurred = await run(
            alice, {"image": plain["outputs"][0]["id"]}, "/api/v1/workflows/blur/jobs"
        )
        theirs = await run(bob, {"graph": image_graph(size=24)})

        async def outputs(key: str, query: str = "") -> dict[str, Any]:
            response = await client.get(f"/api/v1/outputs{query}", headers=auth(key))
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        mine = await outputs(alice)
        assert [item["job_id"] for item in mine["items"]] == [
            blurred["id"],
            animated["id"],
            plain["id"],
        ]  # newest first, and none of bob's
        assert mine["items"][0]["workflow"] == "blur" and mine["items"][2]["workflow"] is None
        assert mine["items"][1]["animated"] is True and mine["next_cursor"] is None
        download = await client.get(mine["items"][0]["url"], headers={"Authorization": ""})
        assert download.status_code == 200 and download.headers["content-type"] == "image/png"

        assert [i["job_id"] for i in (await outputs(alice, "?workflow=blur"))["items"]] == [
            blurred["id"]
        ]
        assert (await outputs(alice, "?kind=video"))["items"] == []
        assert [i["job_id"] for i in (await outputs(bob))["items"]] == [theirs["id"]]
        everyone = await outputs(admin)
        assert len(everyone["items"]) == 4

        first = await outputs(alice, "?limit=2")
        assert len(first["items"]) == 2 and first["next_cursor"]
        rest = await outputs(alice, f"?limit=2&cursor={first['next_cursor']}")
        assert [i["job_id"] for i in rest["items"]] == [plain["id"]]
        assert rest["next_cursor"] is None

        for query, field in (("?kind=hologram", "kind"), ("?cursor=nonsense", "cursor")):
            bad = await client.get(f"/api/v1/outputs{query}", headers=auth(alice))
            assert bad.status_code in (400, 422), bad.text
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert field in bad.text
        assert (
            await client.get("/api/v1/outputs", headers={"Authorization": ""})
        ).status_code == 401
