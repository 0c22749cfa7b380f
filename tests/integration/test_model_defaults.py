"""The README's "prompt in, image out" on a ComfyUI that has some other SD 1.5 checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atelier.testing import ThreadedFakeComfyUI
from tests.workflow_support import WAIT, problem


@pytest.fixture
def dreamshaper(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    models = {"checkpoints": ["dreamshaper_8.safetensors", "juggernautXL_v9.safetensors"]}
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-d", name="d", models=models) as fake:
        yield fake


async def test_txt2img_sd15_with_only_a_prompt_uses_the_installed_checkpoint(
    server_factory: Any, dreamshaper: Any, tmp_path: Path
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", [dreamshaper.url])
    async with server.client() as client:
        response = await client.post(
            "/api/v1/workflows/txt2img_sd15/jobs",
            json={"prompt": "a red fox in the snow"},
            headers=WAIT,
        )
        sdxl = await client.post(
            "/api/v1/workflows/txt2img_sdxl/jobs",
            json={"prompt": "a red fox in the snow", "steps": 2},
            headers=WAIT,
        )
        described = (await client.get("/api/v1/workflows/txt2img_sd15")).json()
        chosen = await client.post(
            "/api/v1/workflows/txt2img_sd15/jobs",
            json={"prompt": "x", "checkpoint": "v1-5-pruned-emaonly.safetensors"},
        )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed", job["error"]
    assert job["params"]["checkpoint"] == "dreamshaper_8.safetensors"
    assert job["outputs"][0]["kind"] == "image"
    assert sdxl.json()["params"]["checkpoint"] == "juggernautXL_v9.safetensors"
    (fit,) = described["backends"]
    assert fit["can_run"] is True and fit["missing_models"] == []
    # A model the caller names is never swapped for another.
    problem(chosen, 422, "validation-failed")


async def test_no_model_of_the_family_is_a_422_listing_what_is_installed(
    server_factory: Any, tmp_path: Path
) -> None:
    models = {"checkpoints": ["sd_xl_base_1.0.safetensors"]}
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-x", name="x", models=models) as fake:
        server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", [fake.url])
        async with server.client() as client:
            response = await client.post(
                "/api/v1/workflows/txt2img_sd15/jobs", json={"prompt": "a fox"}
            )
            listed = await client.get("/api/v1/jobs")
            described = (await client.get("/api/v1/workflows/txt2img_sd15")).json()
    body = problem(response, 422, "capability-missing")
    assert body["installed"] == {"checkpoints": ["sd_xl_base_1.0.safetensors"]}
    (error,) = body["errors"]
    assert error["field"] == "checkpoint"
    assert "sd_xl_base_1.0.safetensors" in error["reason"] and "sd15" in error["reason"]
    assert "checkpoint" in body["detail"]
    assert listed.json()["items"] == []  # refused: nothing was queued
    (fit,) = described["backends"]
    assert fit["can_run"] is False
    assert fit["missing_models"] == ["checkpoints/v1-5-pruned-emaonly.safetensors"]


async def test_the_manifests_preferred_file_comes_before_the_family(
    server_factory: Any, tmp_path: Path
) -> None:
    models = {"checkpoints": ["aaa_sd15_merge.safetensors", "v1-5-pruned.safetensors"]}
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-p", name="p", models=models) as fake:
        server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", [fake.url])
        async with server.client() as client:
            response = await client.post(
                "/api/v1/workflows/txt2img_sd15/jobs",
                json={"prompt": "a fox", "steps": 1, "width": 64, "height": 64},
                headers=WAIT,
            )
    assert response.status_code == 200, response.text
    assert response.json()["params"]["checkpoint"] == "v1-5-pruned.safetensors"
