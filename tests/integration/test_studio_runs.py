"""Pipeline runs on the fake ComfyUI: steps as jobs, what each job records, gates,
review, cancel and retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atelier.testing import ThreadedFakeComfyUI
from tests.helpers import job
from tests.studio_support import make_character, make_project, run_reaches, start_run
from tests.workflow_support import BUILTIN_MODELS, problem


@pytest.fixture
def models_fake(tmp_path: Path) -> Any:
    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy-m", name="m", models=BUILTIN_MODELS, step_time=0.002
    ) as backend:
        yield backend


@pytest.fixture
async def client(server_factory: Any, tmp_path: Path, models_fake: Any) -> Any:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 's.db'}", [f"m={models_fake.url}"],
        studio_resync_interval=0.5,
    )
    async with server.client() as http:
        yield http


SMALL = {"width": 64, "height": 64, "steps": 2}


async def test_a_still_of_a_character_records_what_it_sent(client: Any) -> None:
    project = await make_project(client)
    await client.put(
        f"/api/v1/projects/{project['id']}/bible",
        json={"style": {"style_prompt": "anime", "negative_prompt": "blurry"}},
    )
    character = await make_character(client, project["id"], visual_traits={"hair": "silver"})
    run = await start_run(
        client, "still", project=project["id"], character="Aiko", prompt="in the rain",
        review="none", **SMALL,
    )
    assert run["status"] == "running" and [s["name"] for s in run["steps"]] == ["image"]
    run = await run_reaches(client, run["id"], "completed", "failed")
    assert run["status"] == "completed", run
    step = run["steps"][0]
    assert step["status"] == "completed" and step["outputs"][0]["kind"] == "image"
    assert run["outputs"] == step["outputs"] and run["progress"] == 1.0
    made = await job(client, step["job_id"])
    assert made["workflow"] == "image_edit"
    assert made["params"]["instruction"] == "anime, aiko, 1girl, hair: silver, in the rain"
    assert made["labels"]["project"] == project["id"] and made["labels"]["step"] == "image"
    assert made["labels"]["character"] == character["id"] and made["labels"]["run"] == run["id"]
    studio = made["metadata"]["studio"]
    assert studio["negative_prompt"] == "blurry" and studio["characters"] == [character["id"]]
    assert studio["pipeline"] == "still" and studio["step"] == "image"


async def test_unknown_pipeline_and_bad_params_are_problems(client: Any) -> None:
    problem(await client.post("/api/v1/pipelines/nope/runs", json={}), 404, "pipeline-not-found")
    body = problem(
        await client.post("/api/v1/pipelines/still/runs", json={"params": {"steps": 0}}),
        422,
        "validation-failed",
    )
    assert body["errors"][0]["field"] == "params.steps"
    body = problem(
        await client.post(
            "/api/v1/pipelines/still/runs", json={"params": {"character": "Aiko"}}
        ),
        422,
        "validation-failed",
    )
    assert body["errors"][0]["field"] == "params.character"
    problem(
        await client.post("/api/v1/pipelines/still/runs", json={"params": {"project": "x"}}),
        404,
        "project-not-found",
    )
    assert (await client.get("/api/v1/runs")).json()["items"] == []
    listed = (await client.get("/api/v1/pipelines")).json()["items"]
    assert {"still", "character_sheet", "animation_loop", "full_video", "three_phase",
            "long_video"} == {p["name"] for p in listed}
    assert all(p["parameters"]["type"] == "object" for p in listed)
