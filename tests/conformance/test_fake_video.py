"""The fake's video and reference nodes make real frames that follow their conditioning:
first-last-frame clips start and end on their images, image-to-video starts on its image,
reference edits keep a visible trace of the reference."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from atelier.media import scoring, video
from atelier.testing import FakeComfyUI
from tests.conformance.support import run, view
from tests.media_support import character

MODELS = {
    "checkpoints": ["v1-5-pruned-emaonly.safetensors", "svd_xt.safetensors"],
    "diffusion_models": [
        "wan2.1_flf2v_720p_14B_fp16.safetensors",
        "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
    ],
    "text_encoders": [
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors",
    ],
    "vae": ["wan_2.1_vae.safetensors", "qwen_image_vae.safetensors"],
    "clip_vision": ["clip_vision_h.safetensors"],
}


@pytest.fixture
async def comfy(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(root_dir=tmp_path / "comfy", models=MODELS) as server:
        yield server


async def upload(http: httpx.AsyncClient, name: str, image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    files = {"image": (name, buffer.getvalue(), "image/png")}
    response = await http.post("/upload/image", files=files, data={"overwrite": "true"})
    assert response.status_code == 200, response.text
    uploaded: str = response.json()["name"]
    return uploaded


def wan_graph(
    conditioning: dict[str, Any], *, seed: int = 1, save: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wan 2.1 loaders, text, the given conditioning node as "5", sampler, decode, MP4."""
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {
                "unet_name": "wan2.1_flf2v_720p_14B_fp16.safetensors",
                "weight_dtype": "default",
            },
        },
        "2": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"},
        },
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "4": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "she turns and smiles", "clip": ["2", 0]},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": conditioning,
        "7": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": 2,
                "cfg": 3.0,
                "sampler_name": "uni_pc",
                "scheduler": "simple",
                "denoise": 1.0,
                "model": ["1", 0],
                "positive": ["5", 0],
                "negative": ["5", 1],
                "latent_image": ["5", 2],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["3", 0]}},
        "9": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 16.0}},
        "10": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["9", 0],
                "filename_prefix": "video/wan",
                "format": "mp4",
                "codec": "h264",
            },
        },
        **({"11": save} if save else {}),
    }


def load(node_id: str, name: str) -> dict[str, Any]:
    return {node_id: {"class_type": "LoadImage", "inputs": {"image": name}}}


async def saved_video(http: httpx.AsyncClient, entry: dict[str, Any], node: str, tmp: Path) -> Path:
    item = entry["outputs"][node]["images"][0]
    response = await view(http, item)
    assert response.status_code == 200
    path = tmp / item["filename"]
    path.write_bytes(response.content)
    return path


def steps_of(frames: list[Image.Image]) -> list[float]:
    return [scoring.frame_change(a, b) for a, b in itertools.pairwise(frames)]


async def test_first_last_frame_video_starts_and_ends_on_its_images(
    comfy: FakeComfyUI, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=30) as http:
        start, end = character(1, (96, 64)), character(2, (96, 64))
        first, last = await upload(http, "start.png", start), await upload(http, "end.png", end)
        flf = {
            "class_type": "WanFirstLastFrameToVideo",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["6", 0],
                "vae": ["3", 0],
                "width": 96,
                "height": 64,
                "length": 19,
                "batch_size": 1,
                "start_image": ["20", 0],
                "end_image": ["21", 0],
            },
        }
        webm = {
            "class_type": "SaveWEBM",
            "inputs": {
                "images": ["8", 0],
                "filename_prefix": "clip",
                "codec": "vp9",
                "fps": 16.0,
                "crf": 20.0,
            },
        }
        graph = {**wan_graph(flf, save=webm), **load("20", first), **load("21", last)}
        entry = await run(http, graph)
        assert entry["status"]["status_str"] == "success", entry["status"]
        mp4 = await saved_video(http, entry, "10", tmp_path)
        webm_path = await saved_video(http, entry, "11", tmp_path)
    info = video.probe_video(mp4)
    # length 19 is not 4k+1: Wan rounds down to 17 frames, as the real model does
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 96, 64)
    assert info.frames == 17 and info.fps == 16
    assert video.probe_video(webm_path).codec == "vp9"
    assert video.probe_video(webm_path).frames == 17
    frames = video.read_frames(mp4)
    assert scoring.frame_change(frames[0], start) < 0.02
    assert scoring.frame_change(frames[-1], end) < 0.02
    assert scoring.frame_change(frames[8], start) > 0.05  # it moves
    steps = steps_of(frames)
    # A smooth motion: no frame jumps, and it slows down into its ends.
    assert max(steps) < 3 * (sum(steps) / len(steps)), steps
    assert steps[0] < max(steps) and steps[-1] < max(steps)
    assert scoring.consistency(frames[0], [start]).value > 0.95


async def test_a_loop_returns_to_its_frame_and_seeds_differ(
    comfy: FakeComfyUI, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=30) as http:
        pose = await upload(http, "pose.png", character(3, (64, 64)))
        flf = {
            "class_type": "WanFirstLastFrameToVideo",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["6", 0],
                "vae": ["3", 0],
                "width": 64,
                "height": 64,
                "length": 9,
                "batch_size": 1,
                "start_image": ["20", 0],
                "end_image": ["20", 0],
            },
        }
        clips = []
        for seed in (1, 2):
            entry = await run(http, {**wan_graph(flf, seed=seed), **load("20", pose)})
            clips.append(video.read_frames(await saved_video(http, entry, "10", tmp_path)))
    one, two = clips
    assert len(one) == 9 and scoring.frame_change(one[0], one[-1]) < 0.01
    assert scoring.frame_change(one[4], one[0]) > 0.02
    assert scoring.frame_change(one[4], two[4]) > 0.01  # a reroll makes another motion


async def test_image_to_video_moves_its_start_image(comfy: FakeComfyUI, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=30) as http:
        start = character(4, (80, 48))
        name = await upload(http, "still.png", start)
        i2v = {
            "class_type": "WanImageToVideo",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["6", 0],
                "vae": ["3", 0],
                "width": 80,
                "height": 48,
                "length": 13,
                "batch_size": 1,
                "start_image": ["20", 0],
            },
        }
        entry = await run(http, {**wan_graph(i2v), **load("20", name)})
        frames = video.read_frames(await saved_video(http, entry, "10", tmp_path))
        svd = {
            **load("20", name),
            "1": {
                "class_type": "ImageOnlyCheckpointLoader",
                "inputs": {"ckpt_name": "svd_xt.safetensors"},
            },
            "2": {
                "class_type": "SVD_img2vid_Conditioning",
                "inputs": {
                    "clip_vision": ["1", 1],
                    "init_image": ["20", 0],
                    "vae": ["1", 2],
                    "width": 80,
                    "height": 48,
                    "video_frames": 6,
                    "motion_bucket_id": 127,
                    "fps": 6,
                    "augmentation_level": 0.0,
                },
            },
            "3": {
                "class_type": "KSampler",
                "inputs": {
                    "seed": 3,
                    "steps": 2,
                    "cfg": 2.5,
                    "sampler_name": "euler",
                    "scheduler": "karras",
                    "denoise": 1.0,
                    "model": ["1", 0],
                    "positive": ["2", 0],
                    "negative": ["2", 1],
                    "latent_image": ["2", 2],
                },
            },
            "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
            "5": {
                "class_type": "SaveAnimatedWEBP",
                "inputs": {
                    "images": ["4", 0],
                    "filename_prefix": "svd",
                    "fps": 6.0,
                    "lossless": True,
                    "quality": 80,
                    "method": "default",
                },
            },
        }
        entry = await run(http, svd)
        item = entry["outputs"]["5"]["images"][0]
        animation = Image.open(io.BytesIO((await view(http, item)).content))
    assert len(frames) == 13
    assert scoring.frame_change(frames[0], start) < 0.02
    steps = steps_of(frames)
    assert min(steps) > 0 and max(steps) < 3 * (sum(steps) / len(steps))
    # moved, and still more like its start than like anything else
    moved = scoring.consistency(frames[-1], [start]).value
    assert moved > scoring.consistency(frames[-1], [character(99, (80, 48))]).value + 0.1
    assert getattr(animation, "n_frames", 1) == 6
    animation.seek(0)
    assert scoring.frame_change(animation.convert("RGB"), start) < 0.01


def qwen_edit(
    refs: list[str], *, seed: int = 5, prompt: str = "the same character, waving"
) -> dict[str, Any]:
    graph: dict[str, Any] = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {
                "unet_name": "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
                "weight_dtype": "default",
            },
        },
        "2": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"},
        },
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "4": {
            "class_type": "TextEncodeQwenImageEditPlus",
            "inputs": {"clip": ["2", 0], "prompt": prompt, "vae": ["3", 0]},
        },
        "5": {
            "class_type": "TextEncodeQwenImageEditPlus",
            "inputs": {"clip": ["2", 0], "prompt": "", "vae": ["3", 0]},
        },
        "6": {
            "class_type": "EmptySD3LatentImage",
            "inputs": {"width": 96, "height": 128, "batch_size": 1},
        },
        "7": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": 2,
                "cfg": 2.5,
                "sampler_name": "euler",
                "scheduler": "simple",
                "denoise": 1.0,
                "model": ["1", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "latent_image": ["6", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["3", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "edit"}},
    }
    for index, name in enumerate(refs):
        graph.update(load(str(20 + index), name))
        graph["4"]["inputs"][f"image{index + 1}"] = [str(20 + index), 0]
    return graph


async def _still(http: httpx.AsyncClient, graph: dict[str, Any], node: str) -> Image.Image:
    entry = await run(http, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    response = await view(http, entry["outputs"][node]["images"][0])
    return Image.open(io.BytesIO(response.content)).convert("RGB")


async def test_reference_edits_keep_a_trace_of_the_reference(comfy: FakeComfyUI) -> None:
    reference, stranger = character(10), character(11)
    async with httpx.AsyncClient(base_url=comfy.url, timeout=30) as http:
        ref = await upload(http, "hero.png", reference)
        edit = await _still(http, qwen_edit([ref]), "9")
        reroll = await _still(http, qwen_edit([ref], seed=6), "9")
        plain = await _still(http, qwen_edit([]), "9")
    assert edit.size == (96, 128)
    kept = scoring.consistency(edit, [reference])
    assert kept.passed, kept
    assert not scoring.consistency(edit, [stranger]).passed
    assert scoring.consistency(plain, [reference]).value < kept.value - 0.3
    assert scoring.frame_change(edit, reroll) > 0.01  # another seed, another picture
    assert scoring.consistency(reroll, [reference]).passed


async def test_img2img_keeps_the_input_in_proportion_to_denoise(comfy: FakeComfyUI) -> None:
    source = character(12, (64, 64))

    def img2img(name: str, denoise: float) -> dict[str, Any]:
        return {
            **load("10", name),
            "4": {
                "class_type": "CheckpointLoaderSimple",
                "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
            },
            "6": {
                "class_type": "CLIPTextEncode",
                "inputs": {"text": "oil painting", "clip": ["4", 1]},
            },
            "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
            "3": {
                "class_type": "KSampler",
                "inputs": {
                    "seed": 1,
                    "steps": 2,
                    "cfg": 7.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": denoise,
                    "model": ["4", 0],
                    "positive": ["6", 0],
                    "negative": ["6", 0],
                    "latent_image": ["11", 0],
                },
            },
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {
                "class_type": "SaveImage",
                "inputs": {"images": ["8", 0], "filename_prefix": "i2i"},
            },
        }

    async with httpx.AsyncClient(base_url=comfy.url, timeout=30) as http:
        name = await upload(http, "src.png", source)
        light = await _still(http, img2img(name, 0.3), "9")
        full = await _still(http, img2img(name, 1.0), "9")
    assert scoring.consistency(light, [source]).passed
    assert scoring.consistency(full, [source]).value < 0.5
    assert scoring.frame_change(light, source) < scoring.frame_change(full, source)


async def test_video_node_inputs_are_validated_like_any_other(comfy: FakeComfyUI) -> None:
    flf = {
        "class_type": "WanFirstLastFrameToVideo",
        "inputs": {
            "positive": ["4", 0],
            "negative": ["6", 0],
            "vae": ["3", 0],
            "width": 8,
            "height": 64,
            "length": 9,
            "batch_size": 1,
        },
    }
    async with httpx.AsyncClient(base_url=comfy.url, timeout=30) as http:
        response = await http.post("/prompt", json={"prompt": wan_graph(flf)})
    assert response.status_code == 400
    errors = response.json()["node_errors"]["5"]["errors"]
    assert (
        errors[0]["type"] == "value_smaller_than_min"
        and errors[0]["extra_info"]["input_name"] == "width"
    )
