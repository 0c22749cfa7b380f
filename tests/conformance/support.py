"""Small graphs and HTTP helpers for the fake ComfyUI's behaviour tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

Graph = dict[str, Any]


def image_graph(size: int = 32, color: int = 0x3366CC, prefix: str = "img") -> Graph:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def sampler_graph(
    steps: int = 3,
    seed: int = 1,
    checkpoint: str = "v1-5-pruned-emaonly.safetensors",
    size: int = 64,
) -> Graph:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "smp"}},
    }


async def submit(http: httpx.AsyncClient, prompt: Graph, **fields: Any) -> str:
    response = await http.post("/prompt", json={"prompt": prompt, **fields})
    assert response.status_code == 200, response.text
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


async def history_entry(
    http: httpx.AsyncClient, prompt_id: str, timeout: float = 15.0
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        entry = (await http.get(f"/history/{prompt_id}")).json()
        if entry:
            result: dict[str, Any] = entry[prompt_id]
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"prompt {prompt_id} never reached the history")


async def run(http: httpx.AsyncClient, prompt: Graph, **fields: Any) -> dict[str, Any]:
    return await history_entry(http, await submit(http, prompt, **fields))


async def view(http: httpx.AsyncClient, item: dict[str, Any]) -> httpx.Response:
    params = {"filename": item["filename"], "subfolder": item["subfolder"], "type": item["type"]}
    return await http.get("/view", params=params)
