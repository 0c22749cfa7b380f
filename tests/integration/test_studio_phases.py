"""The three-phase production of one character with its gates, and a run that survives
a restart of Atelier without rerunning a finished step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atelier.testing import ThreadedFakeComfyUI
from atelier.testing.studio_models import with_studio_models
from tests.helpers import eventually
from tests.studio_support import make_character, make_project, run_of, run_reaches, start_run
from tests.workflow_support import BUILTIN_MODELS

VIDEO = {"width": 128, "height": 96, "steps": 4, "fps": 8}


@pytest.fixture
def studio_fake(tmp_path: Path) -> Any:
    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy-v",
        name="v",
        models=with_studio_models(BUILTIN_MODELS),
        step_time=0.01,
    ) as backend:
        yield backend


async def test_three_phases_with_gates_reroll_review_and_approve(
    server_factory: Any, tmp_path: Path, studio_fake: Any
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        [f"v={studio_fake.url}"],
        studio_resync_interval=0.5,
    )
    async with server.client() as client:
        project = await make_project(client)
        await make_character(client, project["id"])
        # Threshold 1.0: the sheet's consistency with the reference (about 0.95) never
        # reaches it, so the sheet gate rerolls once, then asks a person.
        run = await start_run(
            client,
            "three_phase",
            project=project["id"],
            character="Aiko",
            poses=2,
            gate_threshold=1.0,
            max_rerolls=1,
            loop_duration=2,
            video_duration=2,
            **VIDEO,
        )
        names = [s["name"] for s in run["steps"]]
        assert names == ["pose_0", "pose_1", "sheet_gate", "loop", "loop_gate", "shot", "shot_gate"]
        run = await run_reaches(client, run["id"], "awaiting_review", "failed", "completed")
        assert run["status"] == "awaiting_review", run
        steps = {s["name"]: s for s in run["steps"]}
        assert steps["sheet_gate"]["status"] == "awaiting_review"
        assert steps["pose_0"]["tries"] == 2 and steps["loop"]["status"] == "pending"
        consistency = [
            score["value"]
            for evaluation in steps["sheet_gate"]["scores"]
            for score in evaluation["scores"]
            if score["name"] == "consistency"
        ]
        assert len(consistency) == 4 and all(0.8 <= v < 1.0 for v in consistency), consistency

        approved = await client.post(f"/api/v1/runs/{run['id']}/approve")
        assert approved.status_code == 200, approved.text
        run = await run_reaches(client, run["id"], "completed", "failed", "awaiting_review")
        assert run["status"] == "completed", [s["scores"] for s in run["steps"]]
        steps = {s["name"]: s for s in run["steps"]}
        for gate in ("loop_gate", "shot_gate"):  # phases 2 and 3 pass their gates at once
            assert steps[gate]["status"] == "completed"
            (evaluation,) = steps[gate]["scores"]
            assert evaluation["passed"] and evaluation["scores"][0]["name"] == "technical"
        loop = steps["loop"]["outputs"][0]
        assert loop["content_type"] == "video/mp4" and (loop["width"], loop["height"]) == (128, 96)
        assert steps["shot"]["workflow"] == "img2video_wan"
        assert steps["loop"]["started_at"] > steps["sheet_gate"]["finished_at"]
        assert steps["shot"]["started_at"] > steps["loop_gate"]["finished_at"]


@pytest.fixture
def slow_fake(tmp_path: Path) -> Any:
    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy-s",
        name="s",
        models=with_studio_models(BUILTIN_MODELS),
        step_time=0.05,
    ) as backend:
        yield backend


async def test_a_restart_resumes_the_run_without_rerunning_a_finished_step(
    server_factory: Any, tmp_path: Path, slow_fake: Any
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    settings = {"studio_resync_interval": 0.5, "backend_slots": 1}
    first = await server_factory(database, [f"s={slow_fake.url}"], **settings)
    async with first.client() as client:
        run = await start_run(
            client, "long_video", duration=4, segments=2, review="none", **{**VIDEO, "steps": 20}
        )

        async def midway() -> Any:
            current = await run_of(client, run["id"])
            done = [s for s in current["steps"] if s["status"] == "completed"]
            busy = [s for s in current["steps"] if s["status"] == "running"]
            return current if done and busy else None

        before = await eventually(midway, timeout=60)
    await first.stop()  # Atelier goes away mid-run; the backend keeps working
    finished_before = {
        s["name"]: s["job_id"] for s in before["steps"] if s["status"] == "completed"
    }

    second = await server_factory(database, [f"s={slow_fake.url}"], **settings)
    async with second.client() as client:
        run = await run_reaches(client, run["id"], "completed", "failed")
        assert run["status"] == "completed", run
        steps = {s["name"]: s for s in run["steps"]}
        for name, job_id in finished_before.items():
            assert steps[name]["job_id"] == job_id and steps[name]["tries"] == 1
        job_steps = [s for s in run["steps"] if s["kind"] == "job"]
        assert all(s["tries"] == 1 and len(s["jobs"]) == 1 for s in job_steps)
        listed = (await client.get("/api/v1/jobs", params={"label": f"run:{run['id']}"})).json()
        assert len(listed["items"]) == len(job_steps)  # no step was submitted twice
        assert run["outputs"][0]["content_type"] == "video/mp4"
