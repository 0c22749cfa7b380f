"""A job's way through the house, end to end: real server, real sockets, fake ComfyUI."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from PIL import Image

from tests.graphs import animated_graph, image_graph, sampler_graph
from tests.helpers import job_reaches, submit


async def test_job_completes_with_a_real_png(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    server = await server_factory(database_url, [f"a={fake.url}"])
    async with server.client() as client:
        response = await client.post(
            "/api/v1/jobs",
            json={
                "graph": image_graph(color=0x102030, size=48),
                "labels": {"shot": "s01"},
                "metadata": {"n": 1},
            },
            headers={"Prefer": "wait=20"},
        )
        assert response.status_code == 200, response.text
        job = response.json()
        assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
        assert job["status"] == "completed"
        assert job["progress"] == 1.0
        assert job["backend"] == "a"
        assert job["labels"] == {"shot": "s01"} and job["metadata"] == {"n": 1}
        assert [a["status"] for a in job["attempts"]] == ["completed"]
        assert job["queue_seconds"] is not None and job["execution_seconds"] is not None
        (output,) = job["outputs"]
        assert (output["kind"], output["content_type"]) == ("image", "image/png")
        assert (output["width"], output["height"]) == (48, 48)
        download = await client.get(output["url"])
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"
        assert hashlib.sha256(download.content).hexdigest() == output["sha256"]
        image = Image.open(io.BytesIO(download.content))
        # ImageInvert of 0x102030 is 0xEFDFCF.
        assert image.convert("RGB").getpixel((5, 5)) == (0xEF, 0xDF, 0xCF)
        ranged = await client.get(output["url"], headers={"Range": "bytes=0-7"})
        assert ranged.status_code == 206
        assert ranged.content == download.content[:8] == b"\x89PNG\r\n\x1a\n"


async def test_jobs_spread_over_two_backends(
    server_factory: Any, fake: Any, fake_b: Any, tmp_path: Any
) -> None:
    fake.set_timing(step_time=0.05)
    fake_b.set_timing(step_time=0.05)
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [f"a={fake.url}", f"b={fake_b.url}"]
    )
    async with server.client() as client:
        ids = [(await submit(client, sampler_graph(steps=6, seed=i)))["id"] for i in range(4)]
        jobs = [await job_reaches(client, job_id, "completed") for job_id in ids]
    assert {j["backend"] for j in jobs} == {"a", "b"}
    for finished in jobs:
        (output,) = finished["outputs"]
        assert output["kind"] == "image" and output["width"] == 64


async def test_animated_webp_output(server_factory: Any, fake: Any, tmp_path: Any) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        job = (
            await client.post(
                "/api/v1/jobs", json={"graph": animated_graph()}, headers={"Prefer": "wait=20"}
            )
        ).json()
        assert job["status"] == "completed", job
        (output,) = job["outputs"]
        assert output["content_type"] == "image/webp" and output["animated"] is True
        data = (await client.get(output["url"])).content
        assert Image.open(io.BytesIO(data)).format == "WEBP"


async def test_priority_then_age(server_factory: Any, fake: Any, tmp_path: Any) -> None:
    fake.set_timing(step_time=0.05)
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url], backend_slots=1
    )
    async with server.client() as client:
        blocker = await submit(client, sampler_graph(steps=10, seed=100))
        await job_reaches(client, blocker["id"], "running")
        low = await submit(client, image_graph(color=1), priority=0)
        high = await submit(client, image_graph(color=2), priority=5)
        older_high = high
        newer_high = await submit(client, image_graph(color=3), priority=5)
        positions = {
            name: (await client.get(f"/api/v1/jobs/{j['id']}")).json()["queue_position"]
            for name, j in {"low": low, "high": older_high, "newer_high": newer_high}.items()
        }
        assert positions == {"high": 0, "newer_high": 1, "low": 2}
        finished = [
            await job_reaches(client, j["id"], "completed") for j in (low, high, newer_high)
        ]
    started = {j["id"]: j["started_at"] for j in finished}
    assert started[high["id"]] < started[newer_high["id"]] < started[low["id"]]
