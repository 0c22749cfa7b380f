"""Small graphs and HTTP helpers for the fake ComfyUI's behaviour tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from atelier.testing import graphs

Graph = dict[str, Any]


def image_graph(*, size: int = 32, color: int = 0x3366CC, prefix: str = "img") -> Graph:
    return graphs.image_graph(size=size, color=color, prefix=prefix)


def sampler_graph(
    *,
    steps: int = 3,
    seed: int = 1,
    checkpoint: str = "v1-5-pruned-emaonly.safetensors",
    size: int = 64,
) -> Graph:
    return graphs.sampler_graph(
        steps=steps, seed=seed, checkpoint=checkpoint, size=size, text="a red fox", prefix="smp"
    )


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
