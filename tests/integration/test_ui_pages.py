"""The UI's server side without a browser: the pages, their assets and headers, the
browser redirect of GET /, and the all-events stream that starts from now."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from atelier.testing import ThreadedFakeComfyUI
from atelier.ui.pages import NAV
from tests.graphs import image_graph
from tests.helpers import job_reaches, submit
from tests.team import make_key


async def _server(server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path) -> Any:
    return await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}", [fake.url])


async def test_browsers_opening_root_go_to_the_ui_while_api_clients_keep_json(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await _server(server_factory, fake, tmp_path)
    async with server.client() as client:
        browser = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
        assert browser.status_code == 303 and browser.headers["location"] == "/ui/"
        for accept in ("*/*", "application/json"):
            api = await client.get("/", headers={"Accept": accept})
            assert api.status_code == 200 and api.json()["name"] == "atelier"
        bare = await client.get("/ui")
        assert bare.status_code == 308 and bare.headers["location"] == "/ui/"


async def test_every_page_renders_with_its_nav_script_and_strict_headers(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await _server(server_factory, fake, tmp_path)
    pages = {
        "/ui/": "queue.js",
        "/ui/jobs/abc-123": "job.js",
        "/ui/submit": "submit.js",
        "/ui/gallery": "gallery.js",
        "/ui/backends": "backends.js",
        "/ui/login": "login.js",
        "/ui/projects": "projects.js",
        "/ui/projects/p-1": "project.js",
        "/ui/runs": "runs.js",
        "/ui/runs/r-1": "run.js",
    }
    async with server.client() as client:
        for path, script in pages.items():
            page = await client.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert page.headers["referrer-policy"] == "no-referrer"
            assert f"/ui/static/{script}" in page.text and "/ui/static/atelier.js" in page.text
            assert "<script>" not in page.text  # no inline script: the policy forbids it
            for link in NAV:
                assert f'href="{link.path}"' in page.text
        assert 'data-job-id="abc-123"' in (await client.get("/ui/jobs/abc-123")).text
        assert 'data-project-id="p-1"' in (await client.get("/ui/projects/p-1")).text
        assert 'data-run-id="r-1"' in (await client.get("/ui/runs/r-1")).text
        assert "/ui/static/studio_gallery.js" in (await client.get("/ui/gallery")).text
        hostile_run = await client.get('/ui/runs/"><script>alert(1)<')
        assert hostile_run.status_code == 200 and "<script>alert(1)" not in hostile_run.text
        assert (await client.get("/ui/projects/" + "x" * 65)).status_code == 422
        hostile = await client.get('/ui/jobs/"><script>alert(1)<')
        assert hostile.status_code == 200 and "<script>alert(1)" not in hostile.text
        assert (await client.get("/ui/jobs/" + "x" * 65)).status_code == 422
        for asset, kind in (("atelier.css", "text/css"), ("atelier.js", "javascript")):
            response = await client.get(f"/ui/static/{asset}")
            assert response.status_code == 200 and kind in response.headers["content-type"]
        assert (await client.get("/ui/static/../pages.py")).status_code == 404
        assert "/ui" not in json.dumps((await client.get("/openapi.json")).json()["paths"])


async def test_pages_need_no_key_but_their_data_does(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await _server(server_factory, fake, tmp_path)
    async with server.client() as client:
        await make_key(client, "ops", "admin")
        page = await client.get("/ui/")
        assert page.status_code == 200 and "ops" not in page.text
        assert (await client.get("/api/v1/jobs")).status_code == 401
        assert (await client.get("/api/v1/events?replay=false")).status_code == 401


async def _first_event(
    client: Any, path: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    async with client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                event: dict[str, Any] = json.loads(line[5:])
                return event
    raise AssertionError("the stream ended without an event")


async def test_all_events_from_now_skips_the_history(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await _server(server_factory, fake, tmp_path)
    async with server.client() as client:
        old = await submit(client, image_graph())
        await job_reaches(client, old["id"], "completed")

        replayed = await asyncio.wait_for(_first_event(client, "/api/v1/events"), 10)
        assert replayed["job_id"] == old["id"]  # the default replays from the start

        reader = asyncio.create_task(_first_event(client, "/api/v1/events?replay=false"))
        await asyncio.sleep(0.5)  # the stream is open (and has nothing to say yet)
        assert not reader.done()
        new = await submit(client, image_graph())
        live = await asyncio.wait_for(reader, 10)
        assert live["job_id"] == new["id"] and live["type"] == "queued"

        # A reconnect's Last-Event-ID wins: nothing is lost between two connections.
        resumed = await asyncio.wait_for(
            _first_event(client, "/api/v1/events?replay=false", {"Last-Event-ID": "0"}), 10
        )
        assert resumed["job_id"] == old["id"]
        bad = await client.get("/api/v1/events?replay=maybe")
        assert bad.status_code == 422 and bad.headers["content-type"].startswith(
            "application/problem+json"
        )
