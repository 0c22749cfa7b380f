"""`serve --demo` runs every built-in workflow, video and image edit included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from atelier.testing import FakeComfyUI
from atelier.testing.demo import demo_comfyui
from tests.integration.test_workflows import RUNS
from tests.workflow_support import b64png, run

ANIMATEDIFF = {"prompt": "a paper boat on a river", "steps": 2, "frames": 8}
# The studio's video and reference templates, small.
STUDIO = {
    "first_last_video": (
        {
            "start_image": b64png(),
            "end_image": b64png((0, 0, 255)),
            "width": 64,
            "height": 48,
            "frames": 9,
            "steps": 2,
        },
        "video",
    ),
    "img2video_wan": (
        {"start_image": b64png(), "width": 64, "height": 48, "frames": 9, "steps": 2},
        "video",
    ),
    "reference_edit": ({"reference": b64png(), "width": 256, "height": 256, "steps": 2}, "image"),
}


async def test_the_demo_runs_every_builtin_workflow(server_factory: Any, tmp_path: Path) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", [], demo=True, demo_step_time=0.0
    )
    async with server.client() as client:
        listed = (await client.get("/api/v1/workflows")).json()["items"]
        names = {item["name"] for item in listed}
        runs = {**RUNS, **STUDIO, "txt2video_animatediff": (ANIMATEDIFF, "video")}
        assert names == set(runs), names ^ set(runs)  # a new built-in needs a demo run here
        jobs = await asyncio.gather(
            *(run(client, name, params) for name, (params, _) in runs.items())
        )
        node = (await client.get("/api/v1/backends")).json()["items"][0]
    for (name, (_params, kind)), job in zip(runs.items(), jobs, strict=True):
        assert job["status"] == "completed", (name, job["error"])
        assert job["outputs"] and job["outputs"][0]["kind"] == kind, (name, job["outputs"])
    assert node["name"] == "demo"
    video = jobs[list(runs).index("txt2video_animatediff")]["outputs"][0]
    assert video["content_type"] == "video/mp4"


def test_the_simulated_custom_node_says_so(tmp_path: Path) -> None:
    fake = demo_comfyui(tmp_path / "demo", step_time=0.0)
    info = fake.schemas().get("ADE_AnimateDiffLoaderGen1")
    assert info is not None
    assert "SIMULATED" in info["description"] and "simulated" in info["python_module"]
    assert fake.schemas().get("ADE_AnimateDiffLoaderGen1") is not None
    stock = FakeComfyUI(root_dir=tmp_path / "stock")
    assert stock.schemas().get("ADE_AnimateDiffLoaderGen1") is None  # the demo only
