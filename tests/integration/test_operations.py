"""Operators' views on a real server: /metrics moves as jobs run, the health view, scopes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually, job_reaches, submit
from tests.team import make_key


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"


async def scrape(
    client: httpx.AsyncClient, **headers: str
) -> dict[tuple[str, tuple[Any, ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[Any, ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_as_jobs_run(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    fake.set_timing(step_time=0.02)
    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}"])
    async with server.client() as client:
        before = await scrape(client)
        assert value(before, "atelier_backend_up", backend="a") == 1.0
        assert value(before, "atelier_backend_vram_total_bytes", backend="a") > 0
        assert value(before, "atelier_jobs", status="completed") == 0
        first = await submit(client, sampler_graph(steps=5))
        await job_reaches(client, first["id"], "completed")
        second = await submit(client, image_graph(size=16))
        await job_reaches(client, second["id"], "completed")
        workflow = await client.post(
            "/api/v1/workflows/invert/jobs",
            json={"image": image_upload_data()},
            headers={"Prefer": "wait=20"},
        )
        assert workflow.status_code == 200, workflow.text
        await client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000")

        async def moved() -> dict[tuple[str, tuple[Any, ...]], float] | None:
            after = await scrape(client)
            done = value(
                after, "atelier_job_execution_seconds_count", workflow="graph", status="completed"
            )
            # Timings are read in batches of the jobs that end close together.
            invert = value(after, "atelier_job_queue_wait_seconds_count", workflow="invert")
            return after if done == 2 and invert == 1 else None

        after = await eventually(moved, timeout=10)
    assert value(after, "atelier_jobs", status="completed") == 3
    assert value(after, "atelier_job_queue_wait_seconds_count", workflow="graph") == 2
    assert value(after, "atelier_job_queue_wait_seconds_count", workflow="invert") == 1
    assert (
        value(after, "atelier_job_execution_seconds_sum", workflow="graph", status="completed")
        > 0.05
    )
    assert value(after, "atelier_events_published_total", type="completed") == 3
    assert value(after, "atelier_events_published_total", type="progress") >= 5
    assert value(after, "atelier_backend_model_loads_total", backend="a") == 1  # one checkpoint
    assert value(after, "atelier_queue_depth", priority="0") == 0
    assert value(after, "atelier_webhook_deliveries", result="pending") == 0
    # Latency by route template, never by raw path (ids would explode the label set).
    assert (
        value(
            after,
            "atelier_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/jobs/{job_id}",
        )
        >= 3
    )
    assert (
        value(
            after,
            "atelier_http_requests_total",
            method="GET",
            route="/api/v1/jobs/{job_id}",
            status="404",
        )
        == 1
    )
    assert not any("00000000" in str(labels) for _name, labels in after)
    assert value(after, "atelier_event_subscribers", kind="internal") >= 2  # webhooks, metrics
    assert value(after, "atelier_event_subscribers", kind="stream") == 0


async def test_queue_depth_and_backend_down_without_backend(
    server_factory: Any, tmp_path: Path
) -> None:
    server = await server_factory(sqlite(tmp_path), [])
    async with server.client() as client:
        jobs = [await submit(client, image_graph(size=8), priority=p) for p in (0, 0, 5)]
        async with client.stream("GET", f"/api/v1/jobs/{jobs[0]['id']}/events") as stream:
            assert stream.status_code == 200

            async def streaming() -> dict[tuple[str, tuple[Any, ...]], float] | None:
                found = await scrape(client)
                return found if value(found, "atelier_event_subscribers", kind="stream") else None

            samples = await eventually(streaming, timeout=10)
        health = await client.get("/api/v1/health")
    assert value(samples, "atelier_queue_depth", priority="0") == 2
    assert value(samples, "atelier_queue_depth", priority="5") == 1
    assert value(samples, "atelier_jobs", status="queued") == 3
    assert value(samples, "atelier_event_subscribers", kind="stream") == 1  # the SSE client
    assert health.status_code == 503
    report = health.json()
    assert report["status"] == "unhealthy"
    assert report["database"]["status"] == "up"
    assert report["backends"] == []
    assert "no ComfyUI backend" in report["warnings"][0]


async def test_health_view_names_every_component(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}", "gone=http://127.0.0.1:9"])
    async with server.client() as client:
        live = await client.get("/health")
        response = await client.get("/api/v1/health")
    assert live.json() == {"status": "ok"}
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded"  # one backend of two is down
    by_name = {b["name"]: b for b in report["backends"]}
    assert by_name["a"]["status"] == "up" and by_name["a"]["vram_total"] > 0
    assert by_name["a"]["vram_free"] <= by_name["a"]["vram_total"]
    assert by_name["gone"]["status"] == "down" and by_name["gone"]["last_error"]
    storage = report["storage"]
    assert storage["writable"] is True and storage["free_bytes"] > 0
    assert Path(storage["path"]) == (tmp_path / "atelier" / "artifacts").resolve()
    assert report["webhooks"] == {"backlog": 0, "failed": 0}
    assert report["database"] == {"status": "up", "dialect": "sqlite"}


async def test_metrics_need_the_metrics_scope_once_keys_exist(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(sqlite(tmp_path), [f"a={fake.url}"])
    async with server.client() as client:
        root = await make_key(client, "root", "admin")
        keys = {
            "prom": await make_key(client, "prom", "metrics", admin_key=root),
            "app": await make_key(client, "app", "submit", admin_key=root),
            "root": root,
        }
        anonymous = await client.get("/metrics")
        submitter = await client.get("/metrics", headers={"Authorization": f"Bearer {keys['app']}"})
        prometheus = await scrape(client, Authorization=f"Bearer {keys['prom']}")
        admin = await client.get("/metrics", headers={"Authorization": f"Bearer {keys['root']}"})
        prom_jobs = await client.get(
            "/api/v1/jobs", headers={"Authorization": f"Bearer {keys['prom']}"}
        )
    assert anonymous.status_code == 401
    assert submitter.status_code == 403
    assert submitter.json()["type"].endswith("/insufficient-scope")
    assert value(prometheus, "atelier_backend_up", backend="a") == 1.0
    assert admin.status_code == 200
    assert prom_jobs.status_code == 403  # a scraping key reads no job


def image_upload_data() -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
