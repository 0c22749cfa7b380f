"""Who sees what in the studio: projects, characters, runs and the gallery per owner;
anonymous callers see the published gallery only. Run events on the streams. Models
and presets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier.testing import ThreadedFakeComfyUI
from tests.helpers import eventually, read_sse
from tests.studio_support import make_character, make_project, run_reaches, start_run
from tests.team import auth, make_key
from tests.workflow_support import BUILTIN_MODELS, problem

SMALL = {"width": 64, "height": 64, "steps": 2, "review": "none"}


@pytest.fixture
def models_fake(tmp_path: Path) -> Any:
    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy-m", name="m", models=BUILTIN_MODELS, step_time=0.002
    ) as backend:
        yield backend


async def test_ownership_matrix_and_the_public_gallery(
    server_factory: Any, tmp_path: Path, models_fake: Any
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", [f"m={models_fake.url}"]
    )
    async with server.client() as anonymous:
        admin = await make_key(anonymous, "root", "admin")
        alice_key = await make_key(anonymous, "alice", "submit", admin_key=admin)
        bob_key = await make_key(anonymous, "bob", "submit", admin_key=admin)
    alice = server.client(headers=auth(alice_key))
    bob = server.client(headers=auth(bob_key))
    anonymous = server.client()
    async with alice, bob, anonymous:
        project = await make_project(alice)
        pid = project["id"]
        character = await make_character(alice, pid)
        run = await start_run(alice, "still", project=pid, character="Aiko", **SMALL)
        run = await run_reaches(alice, run["id"], "completed", "failed")
        assert run["status"] == "completed", run
        output = run["outputs"][0]["id"]

        # Another owner: every one of alice's things is a 404, and nothing changes.
        for method, path, slug in [
            ("GET", f"/api/v1/projects/{pid}", "project-not-found"),
            ("PATCH", f"/api/v1/projects/{pid}", "project-not-found"),
            ("DELETE", f"/api/v1/projects/{pid}", "project-not-found"),
            ("GET", f"/api/v1/projects/{pid}/bible", "project-not-found"),
            ("PUT", f"/api/v1/projects/{pid}/bible", "project-not-found"),
            ("GET", f"/api/v1/projects/{pid}/characters", "project-not-found"),
            ("GET", f"/api/v1/projects/{pid}/characters/{character['id']}", "project-not-found"),
            ("POST", f"/api/v1/projects/{pid}/characters", "project-not-found"),
            ("POST", f"/api/v1/projects/{pid}/generate", "project-not-found"),
            ("GET", f"/api/v1/runs/{run['id']}", "run-not-found"),
            ("GET", f"/api/v1/runs/{run['id']}/events", "run-not-found"),
            ("POST", f"/api/v1/runs/{run['id']}/cancel", "run-not-found"),
            ("POST", f"/api/v1/runs/{run['id']}/retry", "run-not-found"),
            ("POST", f"/api/v1/runs/{run['id']}/approve", "run-not-found"),
            ("POST", f"/api/v1/runs/{run['id']}/steps/image/rerender", "run-not-found"),
            ("PUT", f"/api/v1/gallery/{output}", "artifact-not-found"),
        ]:
            body: dict[str, Any] = {}
            if method == "PATCH":
                body = {"name": "mine now"}
            elif path.endswith("/bible") and method == "PUT":
                body = {"title": "mine"}
            elif path.endswith("/characters") and method == "POST":
                body = {"name": "Bob"}
            elif path.endswith("/generate"):
                body = {"prompt": "x"}
            response = await bob.request(method, path, json=body if method != "GET" else None)
            problem(response, 404, slug)
        problem(
            await bob.post("/api/v1/pipelines/still/runs", json={"params": {"project": pid}}),
            404,
            "project-not-found",
        )
        assert (await bob.get("/api/v1/projects")).json()["items"] == []
        assert (await bob.get("/api/v1/runs")).json()["items"] == []
        assert (await alice.get(f"/api/v1/projects/{pid}")).json()["name"] == "Moonlit"

        # Gallery: alice sees her own; bob and anonymous callers see nothing yet.
        mine = (await alice.get("/api/v1/gallery")).json()["items"]
        assert [i["artifact_id"] for i in mine] == [output] and mine[0]["published"] is False
        assert (await bob.get("/api/v1/gallery")).json()["items"] == []
        assert (await anonymous.get("/api/v1/gallery")).json()["items"] == []
        problem(await anonymous.get("/api/v1/projects"), 401, "unauthorized")
        problem(await anonymous.put(f"/api/v1/gallery/{output}"), 401, "unauthorized")

        # Published one by one, then the whole project.
        assert (await alice.put(f"/api/v1/gallery/{output}")).status_code == 204
        public = (await anonymous.get("/api/v1/gallery")).json()["items"]
        assert [i["artifact_id"] for i in public] == [output]
        item = public[0]
        assert item["project_id"] == pid and item["character_id"] == character["id"]
        thumb = await anonymous.get(item["thumbnail_url"])  # a signed link
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        assert (await anonymous.get(item["url"])).status_code == 200
        assert (await bob.get("/api/v1/gallery")).json()["items"][0]["artifact_id"] == output
        problem(await bob.delete(f"/api/v1/gallery/{output}"), 404, "artifact-not-found")
        assert (await alice.delete(f"/api/v1/gallery/{output}")).status_code == 204
        assert (await anonymous.get("/api/v1/gallery")).json()["items"] == []
        await alice.patch(f"/api/v1/projects/{pid}", json={"published": True})
        public = (await anonymous.get("/api/v1/gallery", params={"project": pid})).json()
        assert [i["artifact_id"] for i in public["items"]] == [output]
        assert (await anonymous.get("/api/v1/gallery", params={"kind": "video"})).json()[
            "items"
        ] == []

        # Run events: on the run's own stream and on alice's stream of all events.
        events = await read_sse(alice, f"/api/v1/runs/{run['id']}/events")
        assert events[-1]["type"] == "run.status"
        assert events[-1]["data"]["status"] == "completed"
        steps = [e["data"] for e in events if e["type"] == "run.step"]
        assert {"step": "image", "status": "completed"}.items() <= steps[-1].items()
        # The stream of all events shows alice her run's events (bob: none of them).
        assert await first_run_event(alice, quiet=15) is not None
        assert await first_run_event(bob) is None


async def first_run_event(client: httpx.AsyncClient, quiet: float = 3.0) -> dict[str, Any] | None:
    """The first run.* event replayed on /api/v1/events, or None once the replay is over."""
    async with client.stream("GET", "/api/v1/events") as response:
        lines = response.aiter_lines()
        while True:
            try:
                line = await asyncio.wait_for(anext(lines), quiet)
            except TimeoutError:
                return None  # replay done, nothing live: no run event for this caller
            if line.startswith("data:"):
                event: dict[str, Any] = json.loads(line[5:])
                if event["type"].startswith("run."):
                    return event


async def test_models_by_backend_and_folder_with_sizes_and_presets(
    server_factory: Any, tmp_path: Path, models_fake: Any
) -> None:
    models_root = tmp_path / "models"
    (models_root / "checkpoints").mkdir(parents=True)
    (models_root / "checkpoints" / "v1-5-pruned-emaonly.safetensors").write_bytes(b"x" * 1234)
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        [f"m={models_fake.url}"],
        models_dirs=[f"m={models_root}"],
    )
    async with server.client() as client:

        async def ready() -> Any:
            items = (await client.get("/api/v1/models")).json()["items"]
            return items if items and items[0]["folders"] else None

        items = await eventually(ready, timeout=10)
        backend = items[0]
        assert backend["backend"] == "m"
        checkpoints = {f["name"]: f["size"] for f in backend["folders"]["checkpoints"]}
        assert checkpoints["v1-5-pruned-emaonly.safetensors"] == 1234
        assert checkpoints["sd_xl_base_1.0.safetensors"] is None  # not in the folder here
        assert "txt2img_sd15" in backend["workflows"] and "invert" in backend["workflows"]
        presets = (await client.get("/api/v1/presets")).json()
        assert presets["default"] == "production"
        assert set(presets["presets"]) == {"fast_preview", "production", "ultra"}
        assert set(presets["scene_types"]) == {"dialogue", "action", "emotional", "epic"}
