"""Workflow templates through the API: every built-in on the fake ComfyUI, typed
parameters and their errors, presets, seeds, LoRAs, optional images, the registry and
the per-workflow OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atelier.testing import ThreadedFakeComfyUI
from tests.workflow_support import BUILTIN_MODELS, WAIT, b64png, data_uri, image_of, problem, run


@pytest.fixture
def models_fake(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-m", name="m", models=BUILTIN_MODELS) as b:
        yield b


@pytest.fixture
async def client(server_factory: Any, models_fake: Any, tmp_path: Path) -> Any:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", [f"m={models_fake.url}"]
    )
    async with server.client() as http:
        yield http


SMALL = {"width": 64, "height": 64, "steps": 2}
RUNS: dict[str, tuple[dict[str, Any], str]] = {
    "txt2img_sd15": ({**SMALL, "prompt": "a red fox"}, "image"),
    "txt2img_sdxl": ({**SMALL, "batch_size": 2}, "image"),
    "img2img": ({"image": b64png(), "steps": 2, "denoise": 0.5}, "image"),
    "inpaint": ({"image": b64png((255, 0, 0, 0)), "steps": 2}, "image"),
    "upscale": ({"image": b64png(size=(16, 12))}, "image"),
    "image_edit": ({"image": b64png(), "image2": b64png((0, 255, 0)), "steps": 2}, "image"),
    "camera_angle": ({"image": b64png(), "steps": 2, "megapixels": 0.01}, "image"),
    "img2video_svd": ({"image": b64png(), "steps": 2, "width": 64, "height": 48}, "video"),
    "resize": ({"image": b64png(), "width": 20, "height": 10}, "image"),
    "blur": ({"image": b64png(), "radius": 3}, "image"),
    "invert": ({"image": b64png()}, "image"),
    "webp_animation": ({"frame1": b64png(), "frame2": b64png((0, 0, 255))}, "image"),
}


async def test_every_builtin_is_listed_with_its_outputs(client: Any) -> None:
    items = (await client.get("/api/v1/workflows")).json()["items"]
    by_name = {item["name"]: item for item in items}
    assert set(RUNS) | {"txt2video_animatediff"} <= set(by_name)
    assert by_name["txt2img_sd15"]["outputs"] == ["image"]
    assert by_name["img2video_svd"]["outputs"] == ["video"]
    assert by_name["webp_animation"]["outputs"] == ["animated_image"]
    assert by_name["txt2img_sd15"]["presets"] == ["fast_preview", "production", "ultra"]
    assert all(item["version"] >= 1 and item["source"] == "builtin" for item in items)


@pytest.mark.parametrize("name", sorted(RUNS))
async def test_each_builtin_runs_end_to_end(client: Any, name: str) -> None:
    params, kind = RUNS[name]
    job = await run(client, name, params)
    assert job["workflow"] == name and job["workflow_version"] == 1
    assert job["outputs"], job
    assert {o["kind"] for o in job["outputs"]} == {kind}
    if name == "upscale":  # x4 by the model, then x0.5
        assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (32, 24)
    if name == "resize":
        assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (20, 10)
    if name == "img2video_svd":
        assert job["outputs"][0]["content_type"] == "video/mp4"


async def test_model_free_templates_make_real_images(client: Any) -> None:
    job = await run(client, "invert", {"image": data_uri((200, 100, 50))})
    image = await image_of(client, job["outputs"][0])
    assert image.convert("RGB").getpixel((3, 3)) == (55, 155, 205)
    job = await run(
        client,
        "webp_animation",
        {"frame1": b64png(), "frame2": b64png((0, 0, 255)), "frame3": b64png((0, 255, 0), (8, 8))},
    )
    (output,) = job["outputs"]
    assert output["animated"] and output["content_type"] == "image/webp"
    animation = await image_of(client, output)
    assert getattr(animation, "n_frames", 1) == 3 and animation.size == (32, 24)


async def test_optional_images_that_are_not_given_are_pruned(client: Any) -> None:
    job = await run(client, "webp_animation", {"frame1": b64png()})
    assert job["params"]["frame2"] is None and job["params"]["frame3"] is None
    assert not job["outputs"][0]["animated"]  # one frame left: ImageBatch nodes bypassed
    edit = await run(client, "image_edit", {"image": b64png(), "steps": 2})
    assert edit["params"]["image2"] is None and edit["params"]["image3"] is None


async def test_seed_is_drawn_and_recorded(client: Any) -> None:
    first = await run(client, "txt2img_sd15", {**SMALL})
    second = await run(client, "txt2img_sd15", {**SMALL, "seed": -1})
    fixed = await run(client, "txt2img_sd15", {**SMALL, "seed": 1234})
    assert isinstance(first["params"]["seed"], int) and first["params"]["seed"] >= 0
    assert first["params"]["seed"] != second["params"]["seed"]
    assert fixed["params"]["seed"] == 1234


async def test_type_and_range_errors_name_the_parameter(client: Any) -> None:
    cases = [
        ({"steps": "many"}, "steps", "expects an integer"),
        ({"steps": 0}, "steps", "below the minimum 1"),
        ({"cfg": 31}, "cfg", "above the maximum 30"),
        ({"sampler": "warp_drive"}, "sampler", "not one of the allowed values"),
        ({"checkpoint": "nope.safetensors"}, "checkpoint", "not one of the allowed values"),
        ({"width": 10000}, "width", "above the maximum 2048"),
        ({"prompt": 5}, "prompt", "expects a string"),
        ({"seed": -2}, "seed", "below the minimum"),
        ({"loras": ["missing.safetensors:0.5"]}, "loras", "not an available LoRA"),
        ({"surprise": 1}, "surprise", "unknown parameter"),
    ]
    for params, field, reason in cases:
        body = problem(
            await client.post("/api/v1/workflows/txt2img_sd15/jobs", json=params),
            422,
            "validation-failed",
        )
        assert body["errors"][0]["field"] == field, body
        assert reason in body["errors"][0]["reason"], body
    body = problem(
        await client.post("/api/v1/workflows/invert/jobs", json={}), 422, "validation-failed"
    )
    assert body["errors"][0]["field"] == "image"
    body = problem(
        await client.post("/api/v1/workflows/invert/jobs", json={"image": "%%%not base64"}),
        422,
        "validation-failed",
    )
    assert body["errors"][0]["field"] == "image"
    problem(await client.post("/api/v1/workflows/nope/jobs", json={}), 404, "workflow-not-found")
    body = problem(
        await client.post(
            "/api/v1/workflows/txt2img_sd15/jobs", json={}, params={"preset": "huge"}
        ),
        422,
        "validation-failed",
    )
    assert body["errors"][0]["field"] == "preset"
    assert (await client.get("/api/v1/jobs")).json()["items"] == []


async def test_presets_and_the_generic_jobs_route(client: Any) -> None:
    job = await run(client, "txt2img_sd15", {"width": 64, "height": 64}, preset="fast_preview")
    assert job["params"]["steps"] == 8 and job["params"]["width"] == 64
    response = await client.post(
        "/api/v1/jobs",
        json={
            "workflow": "txt2img_sd15",
            "params": {"steps": 2},
            "preset": "production",
            "labels": {"shot": "s1"},
        },
        headers=WAIT,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["params"]["steps"] == 2 and body["params"]["sampler"] == "dpmpp_2m"
    assert body["labels"] == {"shot": "s1"} and body["workflow"] == "txt2img_sd15"
    body = problem(
        await client.post("/api/v1/jobs", json={"workflow": "nope"}), 422, "validation-failed"
    )
    assert body["errors"][0]["field"] == "workflow"
    body = problem(await client.post("/api/v1/jobs", json={}), 422, "validation-failed")
    assert body["errors"][0]["field"] == "graph"


async def test_loras_become_a_chain_after_the_checkpoint(client: Any) -> None:
    job = await run(
        client,
        "txt2img_sd15",
        {
            **SMALL,
            "loras": [
                "detail_tweaker.safetensors:0.8",
                {"name": "film_grain.safetensors", "strength": 0.3},
            ],
        },
    )
    assert job["params"]["loras"] == [
        {"name": "detail_tweaker.safetensors", "strength": 0.8},
        {"name": "film_grain.safetensors", "strength": 0.3},
    ]


async def test_detail_has_a_json_schema_and_who_can_run_it(client: Any) -> None:
    detail = (await client.get("/api/v1/workflows/txt2img_sd15")).json()
    props = detail["schema"]["properties"]
    assert {k: props["steps"][k] for k in ("type", "default", "minimum", "maximum")} == {
        "type": "integer",
        "default": 20,
        "minimum": 1,
        "maximum": 150,
    }
    assert props["cfg"]["x-step"] == 0.1 and props["prompt"]["x-multiline"] is True
    assert "euler" in props["sampler"]["enum"] and props["seed"]["minimum"] == -1
    assert "v1-5-pruned-emaonly.safetensors" in props["checkpoint"]["enum"]
    assert detail["schema"]["additionalProperties"] is False
    assert detail["presets"]["fast_preview"]["steps"] == 8
    assert detail["backends"] == [
        {
            "name": "m",
            "status": "up",
            "can_run": True,
            "missing_node_classes": [],
            "missing_models": [],
        }
    ]
    invert = (await client.get("/api/v1/workflows/invert")).json()
    assert invert["schema"]["required"] == ["image"]
    animatediff = (await client.get("/api/v1/workflows/txt2video_animatediff")).json()
    (fit,) = animatediff["backends"]
    assert fit["can_run"] is False
    assert fit["missing_node_classes"] == ["ADE_AnimateDiffLoaderGen1"]
    assert fit["missing_models"] == ["animatediff_models/mm_sd_v15_v2.ckpt"]
    problem(await client.get("/api/v1/workflows/nope"), 404, "workflow-not-found")


async def test_animatediff_is_refused_naming_what_is_missing(client: Any) -> None:
    body = problem(
        await client.post("/api/v1/workflows/txt2video_animatediff/jobs", json={"steps": 2}),
        422,
        "capability-missing",
    )
    assert body["missing"]["node_classes"] == ["ADE_AnimateDiffLoaderGen1"]
    assert body["missing"]["models"] == ["animatediff_models/mm_sd_v15_v2.ckpt"]
    assert body["backends"] == [
        {
            "backend": "m",
            "node_classes": ["ADE_AnimateDiffLoaderGen1"],
            "models": ["animatediff_models/mm_sd_v15_v2.ckpt"],
        }
    ]
    assert "ADE_AnimateDiffLoaderGen1" in body["detail"]


async def test_openapi_has_a_route_per_workflow(client: Any) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/workflows/txt2img_sd15/jobs"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["properties"]["steps"]["maximum"] == 150
    assert operation["parameters"][0]["schema"]["enum"] == ["fast_preview", "production", "ultra"]
    assert "/api/v1/workflows/{name}/jobs" not in document["paths"]


async def test_without_any_backend_the_bundled_schema_describes_templates(
    server_factory: Any, tmp_path: Path
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", [])
    async with server.client() as http:
        detail = (await http.get("/api/v1/workflows/txt2img_sd15")).json()
        assert detail["schema_source"].startswith("bundled")
        props = detail["schema"]["properties"]
        assert "euler" in props["sampler"]["enum"] and "enum" not in props["checkpoint"]
        assert detail["backends"] == []
        problem(
            await http.post("/api/v1/workflows/txt2img_sd15/jobs", json={"steps": 0}),
            422,
            "validation-failed",
        )
        response = await http.post(
            "/api/v1/workflows/txt2img_sd15/jobs", json={"checkpoint": "any.safetensors"}
        )
        assert response.status_code == 202 and response.json()["status"] == "queued"
