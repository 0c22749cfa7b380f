"""Capability checks: a job goes only to a backend that has its model files, a job no
backend can run is refused naming what is missing where; outputs of every kind come back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atelier.testing import ThreadedFakeComfyUI
from tests.graphs import sampler_graph
from tests.helpers import job_reaches, submit
from tests.workflow_support import WAIT


@pytest.fixture
def fake_sd(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    models = {"checkpoints": ["sd15.safetensors"], "loras": ["style.safetensors"]}
    with ThreadedFakeComfyUI(root_dir=tmp_path / "sd", name="sd", models=models) as backend:
        yield backend


@pytest.fixture
def fake_xl(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    models = {"checkpoints": ["sdxl.safetensors"], "loras": ["xl_only.safetensors"]}
    with ThreadedFakeComfyUI(root_dir=tmp_path / "xl", name="xl", models=models) as backend:
        yield backend


async def test_jobs_go_only_to_the_backend_with_their_model(
    server_factory: Any, database_url: str, fake_sd: Any, fake_xl: Any
) -> None:
    server = await server_factory(database_url, [f"sd={fake_sd.url}", f"xl={fake_xl.url}"])
    async with server.client() as client:
        xl_jobs = [
            await submit(client, sampler_graph(checkpoint="sdxl.safetensors", seed=i, steps=2))
            for i in range(4)
        ]
        sd_jobs = [
            await submit(client, sampler_graph(checkpoint="sd15.safetensors", seed=i, steps=2))
            for i in range(2)
        ]
        for job in xl_jobs:
            done = await job_reaches(client, job["id"], "completed", "failed")
            assert (done["status"], done["backend"]) == ("completed", "xl"), done
        for job in sd_jobs:
            done = await job_reaches(client, job["id"], "completed", "failed")
            assert (done["status"], done["backend"]) == ("completed", "sd"), done
        assert fake_sd.prompt_count == 2 and fake_xl.prompt_count == 4

        # Through a template: its checkpoint choices are every backend's files together.
        detail = (await client.get("/api/v1/workflows/txt2img_sdxl")).json()
        assert detail["schema"]["properties"]["checkpoint"]["enum"] == [
            "sd15.safetensors",
            "sdxl.safetensors",
        ]
        fits = {b["name"]: b for b in detail["backends"]}
        assert fits["sd"]["missing_models"] == ["checkpoints/sd_xl_base_1.0.safetensors"]
        response = await client.post(
            "/api/v1/workflows/txt2img_sdxl/jobs",
            json={"checkpoint": "sdxl.safetensors", "width": 64, "height": 64, "steps": 2},
            headers=WAIT,
        )
        assert response.status_code == 200, response.text
        assert response.json()["backend"] == "xl"


async def test_a_job_no_backend_can_run_is_refused(
    server_factory: Any, fake_sd: Any, fake_xl: Any, tmp_path: Path
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", [f"sd={fake_sd.url}", f"xl={fake_xl.url}"]
    )
    async with server.client() as client:
        graph = sampler_graph(checkpoint="sd15.safetensors")
        graph["10"] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": "xl_only.safetensors",
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        }
        graph["3"]["inputs"]["model"] = ["10", 0]
        response = await client.post("/api/v1/jobs", json={"graph": graph})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["type"] == "https://atelier.dev/problems/capability-missing"
        assert body["missing"] == {
            "node_classes": [],
            "models": ["checkpoints/sd15.safetensors", "loras/xl_only.safetensors"],
        }
        assert body["backends"] == [
            {"backend": "sd", "node_classes": [], "models": ["loras/xl_only.safetensors"]},
            {"backend": "xl", "node_classes": [], "models": ["checkpoints/sd15.safetensors"]},
        ]
        # A file no backend has at all is a plain graph error, as before.
        response = await client.post(
            "/api/v1/jobs", json={"graph": sampler_graph(checkpoint="nowhere.safetensors")}
        )
        assert response.json()["type"] == "https://atelier.dev/problems/graph-invalid"
        assert "on any backend" in response.json()["errors"][0]["reason"]
        assert (await client.get("/api/v1/jobs")).json()["items"] == []


async def test_video_audio_and_text_outputs(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", [f"a={fake.url}"])
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 32, "batch_size": 4, "color": 0x2040FF},
        },
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["2", 0],
                "filename_prefix": "video/test",
                "format": "mp4",
                "codec": "h264",
            },
        },
        "4": {
            "class_type": "EmptyAudio",
            "inputs": {"duration": 0.5, "sample_rate": 8000, "channels": 1},
        },
        "5": {
            "class_type": "SaveAudio",
            "inputs": {"audio": ["4", 0], "filename_prefix": "audio/t"},
        },
        "6": {"class_type": "PrimitiveString", "inputs": {"value": "hello from a node"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
    }
    async with server.client() as client:
        response = await client.post("/api/v1/jobs", json={"graph": graph}, headers=WAIT)
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["status"] == "completed", job["error"]
        by_node = {o["node_id"]: o for o in job["outputs"]}
        video, audio, text = by_node["3"], by_node["5"], by_node["7"]
        assert (video["kind"], video["content_type"], video["animated"]) == (
            "video",
            "video/mp4",
            True,
        )
        assert (video["width"], video["height"]) == (32, 32)
        assert (audio["kind"], audio["content_type"]) == ("audio", "audio/flac")
        assert (text["kind"], text["text"]) == ("text", "hello from a node")
        downloaded = await client.get(video["url"])
        assert downloaded.status_code == 200 and downloaded.content[4:8] == b"ftyp"
        assert (await client.get(text["url"])).text == "hello from a node"
