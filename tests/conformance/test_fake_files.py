"""Files the fake produces and serves, uploads, validation errors and info routes."""

from __future__ import annotations

import io
from typing import Any

import av
import httpx
from PIL import Image

from atelier.testing import FakeComfyUI
from tests.conformance.support import (
    history_entry,
    image_graph,
    run,
    sampler_graph,
    submit,
    view,
)
from tests.conformance.transcript import png_bytes


def _empty(color: int) -> dict[str, Any]:
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": color},
    }


def _frames(outputs: list[Any]) -> dict[str, Any]:
    """Three distinct frames in node 2 (encoders merge identical consecutive frames)."""
    return {
        "1": _empty(0xFF0000),
        "3": _empty(0x00FF00),
        "4": _empty(0x0000FF),
        "5": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["3", 0]}},
        "2": {"class_type": "ImageBatch", "inputs": {"image1": ["5", 0], "image2": ["4", 0]}},
        **{str(10 + i): node for i, node in enumerate(outputs)},
    }


async def test_outputs_are_real_files(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    graph = _frames(
        [
            {
                "class_type": "SaveAnimatedWEBP",
                "inputs": {
                    "images": ["2", 0],
                    "filename_prefix": "anim",
                    "fps": 6.0,
                    "lossless": False,
                    "quality": 80,
                    "method": "default",
                },
            },
            {
                "class_type": "SaveAnimatedPNG",
                "inputs": {
                    "images": ["2", 0],
                    "filename_prefix": "apng",
                    "fps": 6.0,
                    "compress_level": 4,
                },
            },
            {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0}},
            {
                "class_type": "SaveVideo",
                "inputs": {
                    "video": ["12", 0],
                    "filename_prefix": "video/vid",
                    "format": "auto",
                    "codec": "auto",
                },
            },
            {
                "class_type": "EmptyAudio",
                "inputs": {"duration": 0.5, "sample_rate": 22050, "channels": 2},
            },
            {"class_type": "SaveAudio", "inputs": {"audio": ["14", 0], "filename_prefix": "snd"}},
            {"class_type": "PreviewAudio", "inputs": {"audio": ["14", 0]}},
            {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
            {"class_type": "PreviewAny", "inputs": {"source": "hello"}},
            {
                "class_type": "SaveImage",
                "inputs": {"images": ["2", 0], "filename_prefix": "sub/pic"},
            },
        ]
    )
    entry = await run(http, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    outputs = entry["outputs"]

    webp = await view(http, outputs["10"]["images"][0])
    assert webp.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(webp.content)) as image:
        assert image.n_frames == 3 and image.size == (32, 24)
    assert outputs["10"]["animated"] == [True]

    apng = await view(http, outputs["11"]["images"][0])
    with Image.open(io.BytesIO(apng.content)) as image:
        assert getattr(image, "n_frames", 1) == 3
    assert outputs["11"]["animated"] == [True]

    video = outputs["13"]
    assert video["animated"] == [True]
    assert video["images"][0]["subfolder"] == "video"
    assert video["images"][0]["filename"] == "vid_00001_.mp4"
    mp4 = await view(http, video["images"][0])
    assert mp4.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(mp4.content)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3

    for node, kind in (("15", "output"), ("16", "temp")):
        item = outputs[node]["audio"][0]
        assert item["type"] == kind and item["filename"].endswith("_00001_.flac")
        flac = await view(http, item)
        with av.open(io.BytesIO(flac.content)) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.name == "flac" and stream.channels == 2
            assert sum(frame.samples for frame in container.decode(audio=0)) == 11025

    preview = outputs["17"]["images"]
    assert len(preview) == 3 and all(p["type"] == "temp" for p in preview)
    assert outputs["18"] == {"text": ["hello"]}
    saved = outputs["19"]["images"]
    assert [(p["filename"], p["subfolder"]) for p in saved] == [
        ("pic_00001_.png", "sub"),
        ("pic_00002_.png", "sub"),
        ("pic_00003_.png", "sub"),
    ]
    png = await view(http, saved[0])
    with Image.open(io.BytesIO(png.content)) as image:
        assert image.format == "PNG" and image.getpixel((0, 0)) == (255, 0, 0)
        assert "prompt" in image.info  # the prompt is embedded like ComfyUI does


async def test_save_counter_continues_from_disk(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    (comfy.root_dir / "output" / "cont_00007_.png").write_bytes(png_bytes())
    entry = await run(http, image_graph(prefix="cont"))
    assert entry["outputs"]["3"]["images"][0]["filename"] == "cont_00008_.png"


async def test_sampler_images_are_deterministic(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    async def pixels(seed: int, fresh: bool) -> bytes:
        if fresh:
            await http.post("/free", json={"free_memory": True})
        entry = await run(http, sampler_graph(seed=seed, size=72))
        response = await view(http, entry["outputs"]["9"]["images"][0])
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (72, 72)
            return image.tobytes()

    first = await pixels(1, fresh=False)
    assert await pixels(1, fresh=True) == first
    assert await pixels(2, fresh=False) != first


async def test_unimplemented_nodes_are_simulated(http: httpx.AsyncClient) -> None:
    graph = image_graph()
    graph["2"] = {
        "class_type": "ImageSharpen",
        "inputs": {"image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0},
    }
    graph["4"] = {"class_type": "GetImageSize", "inputs": {"image": ["2", 0]}}
    graph["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}
    entry = await run(http, graph)
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"]["5"] == {"text": ["32"]}


async def test_upload_naming_rules(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    async def upload(content: bytes, **data: str) -> httpx.Response:
        files = {"image": ("up.png", content, "image/png")}
        return await http.post("/upload/image", files=files, data=data)

    first, other = png_bytes((1, 1, 1)), png_bytes((2, 2, 2))
    assert (await upload(first)).json() == {"name": "up.png", "subfolder": "", "type": "input"}
    assert (await upload(first)).json()["name"] == "up.png"
    assert (await upload(other)).json()["name"] == "up (1).png"
    assert (await upload(other)).json()["name"] == "up (1).png"
    assert (await upload(png_bytes((3, 3, 3)))).json()["name"] == "up (2).png"
    assert (await upload(other, overwrite="true")).json()["name"] == "up.png"
    assert (comfy.root_dir / "input" / "up.png").read_bytes() == other
    in_sub = await upload(first, subfolder="a/b", type="temp")
    assert in_sub.json() == {"name": "up.png", "subfolder": "a/b", "type": "temp"}
    assert (comfy.root_dir / "temp" / "a" / "b" / "up.png").exists()
    assert (await upload(first, subfolder="../../etc")).status_code == 400
    assert (await upload(first, type="models")).status_code == 500
    assert (await http.post("/upload/image", data={"subfolder": "x"})).status_code == 400


async def test_view_path_checks(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    entry = await run(http, image_graph(prefix="v"))
    name = entry["outputs"]["3"]["images"][0]["filename"]

    async def status(**params: str) -> int:
        return (await http.get("/view", params=params)).status_code

    assert await status(filename=name) == 200
    assert await status(filename=f"{name} [output]", type="input") == 200
    assert await status(filename=f"deep/dir/{name}") == 200  # basename only
    assert await status(filename="../x.png") == 400
    assert await status(filename="/etc/passwd") == 400
    assert await status(filename=name, type="models") == 400
    assert await status(filename=name, subfolder="../..") == 403
    assert await status(filename="nope.png") == 404
    assert await status(type="output") == 404
    ranged = await http.get("/view", params={"filename": name}, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and len(ranged.content) == 10
    full = await http.get("/view", params={"filename": name})
    assert full.headers["content-disposition"] == f'filename="{name}"'
    for preview, kind in (("webp;90", "image/webp"), ("jpeg;80", "image/jpeg")):
        response = await http.get("/view", params={"filename": name, "preview": preview})
        assert response.headers["content-type"] == kind
    rgb = await http.get("/view", params={"filename": name, "channel": "rgb"})
    assert rgb.headers["content-type"] == "image/png"


async def test_load_image_accepts_subfolders_and_annotations(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    (comfy.root_dir / "input" / "sub").mkdir()
    (comfy.root_dir / "input" / "sub" / "in.png").write_bytes(png_bytes(size=8))
    (comfy.root_dir / "output" / "made.png").write_bytes(png_bytes(size=12))
    for name, size in (("sub/in.png", 8), ("made.png [output]", 12)):
        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "l"},
            },
        }
        entry = await run(http, graph)
        response = await view(http, entry["outputs"]["2"]["images"][0])
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (size, size)


def _node_errors(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body["node_errors"]


async def test_validation_errors_have_comfyui_shapes(http: httpx.AsyncClient) -> None:
    graph = image_graph()
    graph["1"]["inputs"].pop("color")
    graph["1"]["inputs"]["width"] = "wide"
    response = await http.post("/prompt", json={"prompt": graph})
    assert response.status_code == 400
    errors = _node_errors(response)["1"]["errors"]
    assert [e["type"] for e in errors] == ["invalid_input_type", "required_input_missing"]
    assert errors[0]["details"] == "width, wide, invalid literal for int() with base 10: 'wide'"

    graph = sampler_graph()
    graph["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
    graph["3"]["inputs"]["latent_image"] = ["6", 0]
    graph["8"]["inputs"]["samples"] = ["3", 0, 1]
    errors_by_node = _node_errors(await http.post("/prompt", json={"prompt": graph}))
    assert errors_by_node["8"]["errors"][0]["type"] == "bad_linked_input"
    graph["8"]["inputs"]["samples"] = ["3", 0]
    errors_by_node = _node_errors(await http.post("/prompt", json={"prompt": graph}))
    mismatch = errors_by_node["3"]["errors"][0]
    assert mismatch["type"] == "return_type_mismatch"
    assert mismatch["extra_info"]["received_type"] == "CONDITIONING"
    combo = errors_by_node["4"]["errors"][0]
    assert combo["type"] == "value_not_in_list"
    assert combo["details"].startswith("ckpt_name: 'missing.safetensors' not in [")

    graph = image_graph()
    graph["2"]["inputs"]["image"] = ["99", 0]
    response = await http.post("/prompt", json={"prompt": graph})
    failure = response.json()
    assert failure["error"]["type"] == "prompt_outputs_failed_validation"
    inner = failure["node_errors"]["2"]["errors"][0]
    assert inner["type"] == "exception_during_inner_validation" and inner["details"] == "'99'"
    graph["3"]["inputs"]["images"] = ["99", 0]
    failure = (await http.post("/prompt", json={"prompt": graph})).json()
    outer = failure["node_errors"]["3"]["errors"][0]
    assert outer["type"] == "exception_during_validation"
    assert outer["extra_info"]["exception_type"] == "KeyError"
    assert failure["error"]["details"] == "Exception when validating node: '99'"

    graph = image_graph()
    graph["1"]["inputs"]["width"] = 0
    failure = (await http.post("/prompt", json={"prompt": graph})).json()
    assert failure["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"

    missing_class = {"1": {"inputs": {}}}
    failure = (await http.post("/prompt", json={"prompt": missing_class})).json()
    assert failure["error"]["message"].endswith("missing the class_type property.")


async def test_partial_validation_runs_the_valid_outputs(http: httpx.AsyncClient) -> None:
    graph = image_graph()
    graph["4"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
    graph["1"]["inputs"]["width"] = "32"  # coerced to an int, in queue and history too
    response = await http.post("/prompt", json={"prompt": graph})
    assert response.status_code == 200
    body = response.json()
    assert body["node_errors"]["4"]["dependent_outputs"] == ["4"]
    history = await history_entry(http, body["prompt_id"])
    assert history["prompt"][4] == ["3"] and list(history["outputs"]) == ["3"]
    assert history["prompt"][2]["1"]["inputs"]["width"] == 32


async def test_rejected_prompts_use_up_numbers(http: httpx.AsyncClient) -> None:
    assert (await http.post("/prompt", json={"prompt": {}})).status_code == 400
    assert (await http.post("/prompt", json={})).status_code == 400
    assert (await http.post("/prompt", json={"prompt": "x"})).status_code == 500
    response = await http.post("/prompt", json={"prompt": image_graph(), "prompt_id": 42})
    assert response.json()["number"] == 3 and response.json()["prompt_id"] == "42"


async def test_history_paging_and_deletion(http: httpx.AsyncClient) -> None:
    ids = [await submit(http, image_graph(prefix=f"h{i}")) for i in range(3)]
    await run(http, image_graph(prefix="last"))
    newest_two = list((await http.get("/history", params={"max_items": 2})).json())
    assert newest_two[0] == ids[2]
    assert list((await http.get("/history", params={"offset": 1, "max_items": 1})).json()) == [
        ids[1]
    ]
    await http.post("/history", json={"delete": [ids[0]]})
    assert (await http.get(f"/history/{ids[0]}")).json() == {}
    await http.post("/history", json={"clear": True})
    assert (await http.get("/history")).json() == {}


async def test_info_routes(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    stats = (await http.get("/api/system_stats")).json()
    assert stats["devices"][0]["vram_total"] == 24 * 1024**3
    assert (await http.get("/features")).json()["supports_preview_metadata"] is True
    info = (await http.get("/object_info")).json()
    assert len(info) > 450
    ckpt = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert ckpt == ["sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"]
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == [
        "RealESRGAN_x4plus.pth"
    ]
    assert info["LoadImage"]["input"]["required"]["image"][0] == ["example.png"]
    assert (await http.get("/object_info/NoSuchNode")).json() == {}
    assert "checkpoints" in (await http.get("/models")).json()
    assert (await http.get("/models/loras")).json() == [
        "camera_angle.safetensors",
        "detail_tweaker.safetensors",
    ]
    assert (await http.get("/models/nope")).status_code == 404
    assert (await http.get("/embeddings")).json() == []
    assert (await http.get("/api/internal/files/input")).status_code == 404
    assert (await http.get("/internal/files/input")).json() == ["example.png"]
    cross_origin = await http.get("/queue", headers={"Origin": "http://evil.example"})
    assert cross_origin.status_code == 403


async def test_image_transforms_produce_the_expected_sizes(http: httpx.AsyncClient) -> None:
    def node(class_type: str, **inputs: Any) -> dict[str, Any]:
        return {"class_type": class_type, "inputs": inputs}

    src = ["1", 0]
    graph: dict[str, Any] = {
        "1": node("EmptyImage", width=40, height=20, batch_size=2, color=0x102030),
        "2": node(
            "ImageScale", image=src, upscale_method="bilinear", width=80, height=0, crop="disabled"
        ),
        "3": node("ImageScaleBy", image=src, upscale_method="lanczos", scale_by=0.5),
        "4": node("ImageCrop", image=src, width=10, height=5, x=35, y=0),
        "5": node("ImageRotate", image=src, rotation="90 degrees"),
        "6": node("ImageFlip", image=src, flip_method="x-axis: vertically"),
        "7": node("ImagePadForOutpaint", image=src, left=8, top=0, right=8, bottom=0, feathering=4),
        "8": node("RepeatImageBatch", image=src, amount=2),
        "9": node("ImageBlur", image=src, blur_radius=3, sigma=1.0),
        "10": node("UpscaleModelLoader", model_name="RealESRGAN_x4plus.pth"),
        "11": node("ImageUpscaleWithModel", upscale_model=["10", 0], image=src),
        "12": node("MaskToImage", mask=["7", 1]),
    }
    expected = {
        "2": (80, 40, 2),
        "3": (20, 10, 2),
        "4": (5, 5, 2),
        "5": (20, 40, 2),
        "6": (40, 20, 2),
        "7": (56, 20, 2),
        "8": (40, 20, 4),
        "9": (40, 20, 2),
        "11": (160, 80, 2),
        "12": (56, 20, 1),
    }
    for source in expected:
        graph[f"s{source}"] = node("SaveImage", images=[source, 0], filename_prefix=f"t{source}")
    entry = await run(http, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    for source, (width, height, batch) in expected.items():
        images = entry["outputs"][f"s{source}"]["images"]
        assert len(images) == batch, source
        with Image.open(io.BytesIO((await view(http, images[0])).content)) as image:
            assert image.size == (width, height), source


async def test_lora_and_advanced_sampler_graph(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    graph = sampler_graph(steps=4)
    graph["10"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["4", 0],
            "clip": ["4", 1],
            "lora_name": "detail_tweaker.safetensors",
            "strength_model": 0.8,
            "strength_clip": 1.0,
        },
    }
    graph["11"] = {
        "class_type": "VAELoader",
        "inputs": {"vae_name": "vae-ft-mse-840000.safetensors"},
    }
    graph["3"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "model": ["10", 0],
            "add_noise": "enable",
            "noise_seed": 5,
            "steps": 6,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
            "start_at_step": 2,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
        },
    }
    graph["8"]["inputs"]["vae"] = ["11", 0]
    entry = await run(http, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert comfy.loaded_checkpoint == "v1-5-pruned-emaonly.safetensors"
