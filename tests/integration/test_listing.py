"""Listing with filters and cursor pagination, backends, health and readiness."""

from __future__ import annotations

from typing import Any

from tests.graphs import image_graph
from tests.helpers import job_reaches


async def test_list_filters_and_pages(server_factory: Any, database_url: str, fake: Any) -> None:
    server = await server_factory(database_url, [fake.url])
    async with server.client() as client:
        ids = []
        for i in range(5):
            response = await client.post(
                "/api/v1/jobs",
                json={
                    "graph": image_graph(color=i),
                    "labels": {"batch": "even" if i % 2 == 0 else "odd"},
                },
            )
            ids.append(response.json()["id"])
        for job_id in ids:
            await job_reaches(client, job_id, "completed")
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/api/v1/jobs", params=params)).json()
            seen.extend(item["id"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        even = (await client.get("/api/v1/jobs", params={"label": "batch:even"})).json()["items"]
        assert [j["id"] for j in even] == [ids[4], ids[2], ids[0]]
        none = (await client.get("/api/v1/jobs", params={"status": "failed,cancelled"})).json()[
            "items"
        ]
        assert none == []
        done = (
            await client.get(
                "/api/v1/jobs", params=[("status", "completed"), ("label", "batch:odd")]
            )
        ).json()
        assert [j["id"] for j in done["items"]] == [ids[3], ids[1]]


async def test_backends_health_ready_and_root(
    server_factory: Any, fake: Any, tmp_path: Any
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [f"gpu0={fake.url}"])
    async with server.client() as client:
        (backend,) = (await client.get("/api/v1/backends")).json()["items"]
        assert backend["name"] == "gpu0" and backend["status"] == "up"
        assert backend["vram_total"] > 0 and backend["vram_free"] is not None
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/ready")).status_code == 200
        root = (await client.get("/")).json()
        assert root["shape"] == "single-node" and root["backends_up"] == 1 and root["demo"] is False
        assert set(root["jobs"]) == {"queued", "running", "completed", "failed", "cancelled"}
        fake.crash()
        server.runtime.pool.report_lost(server.runtime.pool.get("gpu0"), "test")  # type: ignore[arg-type]
        response = await client.get("/ready")
        assert response.status_code == 503 and response.json()["backends_up"] == 0


async def test_not_ready_without_backends(server_factory: Any, tmp_path: Any) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [])
    async with server.client() as client:
        assert (await client.get("/ready")).status_code == 503
        # Jobs are still accepted (and wait): nothing can check them against a backend yet.
        response = await client.post("/api/v1/jobs", json={"graph": image_graph()})
        assert response.status_code == 202 and response.json()["status"] == "queued"
