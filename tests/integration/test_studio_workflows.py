"""The studio's built-in workflows on the fake, through the API: the files open, have the
size, frames and fps asked for, and follow their images (first and last frames, start
image, references)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from atelier.media import scoring, video
from atelier.testing import ThreadedFakeComfyUI
from tests.media_support import character
from tests.workflow_support import BUILTIN_MODELS, image_of, problem, run


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def studio_fake(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-s", name="s", models=BUILTIN_MODELS) as b:
        yield b


@pytest.fixture
async def client(server_factory: Any, studio_fake: Any, tmp_path: Path) -> Any:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 's.db'}", [f"s={studio_fake.url}"]
    )
    async with server.client() as http:
        yield http


async def download(client: Any, artifact: dict[str, Any], tmp_path: Path) -> Path:
    response = await client.get(artifact["url"])
    assert response.status_code == 200, response.text
    path = tmp_path / f"{artifact['id']}.mp4"
    path.write_bytes(response.content)
    return path


async def test_first_last_video_runs_from_start_to_end_frame(client: Any, tmp_path: Path) -> None:
    start, end = character(21, (96, 64)), character(22, (96, 64))
    params = {
        "start_image": b64(start),
        "end_image": b64(end),
        "prompt": "she turns around",
        "width": 96,
        "height": 64,
        "frames": 17,
        "fps": 8,
        "steps": 2,
        "seed": 7,
    }
    job = await run(client, "first_last_video", params)
    (output,) = job["outputs"]
    assert output["kind"] == "video" and output["content_type"] == "video/mp4"
    path = await download(client, output, tmp_path)
    score = scoring.technical(path, width=96, height=64, frames=17, fps=8, duration=17 / 8)
    assert score.passed, score.details
    assert score.details["codec"] == "h264" and score.details["pix_fmt"] == "yuv420p"
    first, last = video.read_frames(path, [0, -1])
    assert scoring.consistency(first, [start]).value > 0.95
    assert scoring.consistency(last, [end]).value > 0.95
    assert job["params"]["seed"] == 7 and job["params"]["frames"] == 17


async def test_img2video_wan_starts_on_its_image(client: Any, tmp_path: Path) -> None:
    start = character(23, (80, 48))
    job = await run(
        client,
        "img2video_wan",
        {"start_image": b64(start), "width": 80, "height": 48, "frames": 9, "steps": 2},
    )
    path = await download(client, job["outputs"][0], tmp_path)
    assert scoring.technical(path, width=80, height=48, frames=9, fps=16).passed
    assert scoring.consistency(video.poster_frame(path), [start]).value > 0.95


async def test_presets_and_bad_frames_are_checked(client: Any) -> None:
    body = problem(
        await client.post("/api/v1/workflows/first_last_video/jobs", json={"frames": 1000}),
        422,
        "validation-failed",
    )
    fields = {e["field"] for e in body["errors"]}
    assert "frames" in fields, body
    detail = (await client.get("/api/v1/workflows/first_last_video")).json()
    assert set(detail["presets"]) >= {"fast_preview", "production"}
    assert detail["outputs"] == ["video"]


async def test_reference_stills_keep_the_reference(client: Any) -> None:
    hero, stranger = character(30, (128, 128)), character(31, (128, 128))
    edit = await run(
        client,
        "reference_edit",
        {"reference": b64(hero), "width": 256, "height": 320, "steps": 2, "seed": 1},
    )
    reroll = await run(
        client,
        "reference_edit",
        {"reference": b64(hero), "width": 256, "height": 320, "steps": 2, "seed": 2},
    )
    pictures = [await image_of(client, job["outputs"][0]) for job in (edit, reroll)]
    assert pictures[0].size == (256, 320)
    for picture in pictures:
        assert scoring.consistency(picture, [hero]).passed
        assert not scoring.consistency(picture, [stranger]).passed
    assert scoring.frame_change(pictures[0], pictures[1]) > 0.01
    kontext = await run(client, "image_edit", {"image": b64(hero), "steps": 2})
    assert scoring.consistency(await image_of(client, kontext["outputs"][0]), [hero]).passed
    img2img = await run(client, "img2img", {"image": b64(hero), "steps": 2, "denoise": 0.4})
    assert scoring.consistency(await image_of(client, img2img["outputs"][0]), [hero]).passed
    full = await run(client, "img2img", {"image": b64(hero), "steps": 2, "denoise": 1.0})
    assert not scoring.consistency(await image_of(client, full["outputs"][0]), [hero]).passed
