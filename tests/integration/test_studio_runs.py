"""Pipeline runs on the fake ComfyUI: steps as jobs, what each job records, gates,
review, cancel and retry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from atelier.testing import ThreadedFakeComfyUI
from tests.helpers import eventually, job
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
        f"sqlite+aiosqlite:///{tmp_path / 's.db'}",
        [f"m={models_fake.url}"],
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
        client,
        "still",
        project=project["id"],
        character="Aiko",
        prompt="in the rain",
        review="none",
        **SMALL,
    )
    assert run["status"] == "running" and [s["name"] for s in run["steps"]] == ["image"]
    run = await run_reaches(client, run["id"], "completed", "failed")
    assert run["status"] == "completed", run
    step = run["steps"][0]
    assert step["status"] == "completed" and step["outputs"][0]["kind"] == "image"
    assert run["outputs"] == step["outputs"] and run["progress"] == 1.0
    made = await job(client, step["job_id"])
    assert made["workflow"] == "reference_edit"
    assert made["params"]["prompt"] == "anime, aiko, 1girl, hair: silver, in the rain"
    assert made["params"]["negative_prompt"] == "blurry"
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
        await client.post("/api/v1/pipelines/still/runs", json={"params": {"character": "Aiko"}}),
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
    assert {
        "still",
        "character_sheet",
        "animation_loop",
        "full_video",
        "three_phase",
        "long_video",
    } == {p["name"] for p in listed}
    assert all(p["parameters"]["type"] == "object" for p in listed)


async def test_a_failing_gate_rerolls_then_holds_for_review_and_approve_resumes(
    client: Any,
) -> None:
    project = await make_project(client)
    reference = (await make_character(client, project["id"]))["references"][0]["artifact_id"]
    # Threshold 1.0: consistency is never perfect for an edited picture, so the gate
    # fails every time: one reroll (a new seed), then a person decides.
    run = await start_run(
        client,
        "character_sheet",
        project=project["id"],
        character="Aiko",
        poses=2,
        gate_threshold=1.0,
        max_rerolls=1,
        **SMALL,
    )
    run = await run_reaches(client, run["id"], "awaiting_review", "failed", "completed")
    assert run["status"] == "awaiting_review", run
    steps = {s["name"]: s for s in run["steps"]}
    gate = steps["sheet_gate"]
    assert gate["status"] == "awaiting_review"
    evaluations = [e for e in gate["scores"] if "target" in e]
    assert len(evaluations) == 4  # two poses, scored twice
    assert {s["name"] for e in evaluations for s in e["scores"]} == {"technical", "consistency"}
    assert all(not e["passed"] for e in evaluations)
    for pose in ("pose_0", "pose_1"):
        assert steps[pose]["tries"] == 2 and len(steps[pose]["jobs"]) == 2
        first, second = [await job(client, j) for j in steps[pose]["jobs"]]
        assert first["params"]["seed"] != second["params"]["seed"]

    problem(
        await client.post(f"/api/v1/runs/{run['id']}/approve", json={"step": "nope"}),
        409,
        "run-state-conflict",
    )
    approved = await client.post(f"/api/v1/runs/{run['id']}/approve", json={"comment": "ok"})
    assert approved.status_code == 200, approved.text
    run = await run_reaches(client, run["id"], "completed", "failed")
    assert run["status"] == "completed"
    gate = {s["name"]: s for s in run["steps"]}["sheet_gate"]
    assert gate["scores"][-1]["review"] == "approved" and gate["scores"][-1]["comment"] == "ok"
    assert len(run["outputs"]) == 2  # the two poses
    # The approved sheet is now the character's reference, after the one it had.
    aiko = (await client.get(f"/api/v1/projects/{project['id']}/characters/Aiko")).json()
    assert len(aiko["references"]) == 3
    assert aiko["references"][0]["artifact_id"] == reference


async def test_reject_fails_the_run_and_retry_rerolls_the_rejected_step(client: Any) -> None:
    run = await start_run(client, "still", prompt="a fox", review="manual", **SMALL)
    run = await run_reaches(client, run["id"], "awaiting_review")
    gate = {s["name"]: s for s in run["steps"]}["image_gate"]
    assert gate["scores"] and gate["scores"][0]["scores"][0]["name"] == "technical"
    first_job = run["steps"][0]["job_id"]
    rejected = await client.post(f"/api/v1/runs/{run['id']}/reject")
    assert rejected.status_code == 200
    run = await run_reaches(client, run["id"], "failed")
    assert run["error"]["steps"] == ["image_gate"]
    retried = await client.post(f"/api/v1/runs/{run['id']}/retry")
    assert retried.status_code == 202, retried.text
    run = await run_reaches(client, run["id"], "awaiting_review")
    assert run["steps"][0]["job_id"] != first_job and run["steps"][0]["tries"] == 2
    problem(await client.post(f"/api/v1/runs/{run['id']}/retry"), 409, "run-state-conflict")


@pytest.fixture
def slow_fake(tmp_path: Path) -> Any:
    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy-s", name="s", models=BUILTIN_MODELS, step_time=0.1
    ) as backend:
        yield backend


async def test_cancel_leaves_no_job_of_the_run_queued_or_running(
    server_factory: Any, tmp_path: Path, slow_fake: Any
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", [f"s={slow_fake.url}"], backend_slots=1
    )
    async with server.client() as client:
        run = await start_run(
            client, "character_sheet", poses=3, review="none", width=64, height=64, steps=30
        )

        async def some_running() -> Any:
            current = (await client.get(f"/api/v1/runs/{run['id']}")).json()
            return current if any(s["status"] == "running" for s in current["steps"]) else None

        await eventually(some_running, timeout=30)
        cancelled = await client.post(f"/api/v1/runs/{run['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        run = await run_reaches(client, run["id"], "cancelled")
        job_ids = [j for s in run["steps"] for j in s["jobs"]]
        assert job_ids
        for job_id in job_ids:
            assert (await job(client, job_id))["status"] in ("cancelled", "completed")
        async with httpx.AsyncClient() as comfy:  # nothing left on the backend either
            queue = (await comfy.get(f"{slow_fake.url}/queue")).json()
        assert queue == {"queue_running": [], "queue_pending": []}
        problem(await client.post(f"/api/v1/runs/{run['id']}/approve"), 409, "run-state-conflict")


async def test_a_job_is_found_by_the_prompt_id_of_its_attempt(client: Any) -> None:
    run = await start_run(client, "still", prompt="a fox", review="none", **SMALL)
    run = await run_reaches(client, run["id"], "completed")
    made = await job(client, run["steps"][0]["job_id"])
    prompt_id = made["attempts"][0]["prompt_id"]
    assert prompt_id != made["id"]
    assert (await job(client, prompt_id))["id"] == made["id"]
    problem(await client.get("/api/v1/jobs/no-such-prompt"), 404, "job-not-found")


async def test_run_events_over_websocket(
    server_factory: Any, tmp_path: Path, models_fake: Any
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", [f"m={models_fake.url}"]
    )
    async with server.client() as client:
        run = await start_run(client, "still", prompt="a fox", review="none", **SMALL)
    base = server.url.replace("http://", "ws://")
    events = []
    async with websockets.connect(f"{base}/api/v1/runs/{run['id']}/ws") as socket:
        async for raw in socket:
            events.append(json.loads(raw))
    assert events[-1]["type"] == "run.status" and events[-1]["data"]["status"] == "completed"
    assert [e["data"]["status"] for e in events if e["type"] == "run.step"] == [
        "running",
        "completed",
    ]
    assert all(e["job_id"] == run["id"] for e in events)
    try:  # refused before the handshake completes (403), or closed with 4404
        async with websockets.connect(f"{base}/api/v1/runs/nope/ws") as socket:
            await socket.recv()
    except websockets.InvalidStatus as exc:
        assert exc.response.status_code == 403
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4404
    else:
        raise AssertionError("the socket should have been refused")
