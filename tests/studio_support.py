"""Helpers of the studio tests: a project with a character, and waiting for runs."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
from PIL import Image, ImageDraw

from tests.helpers import eventually


def reference_png(size: tuple[int, int] = (64, 64)) -> str:
    """A reference picture with structure (a light disc and a bar on a dark ground)."""
    image = Image.new("RGB", size, (20, 30, 60))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w // 4, h // 8, 3 * w // 4, h // 2), fill=(240, 200, 170))
    draw.rectangle((w // 3, h // 2, 2 * w // 3, h - 4), fill=(200, 40, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def make_project(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/projects", json={"name": "Moonlit", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_character(
    client: httpx.AsyncClient, project_id: str, *, reference: bool = True, **fields: Any
) -> dict[str, Any]:
    body = {"name": "Aiko", "prompt_fragment": "aiko, 1girl", **fields}
    response = await client.post(f"/api/v1/projects/{project_id}/characters", json=body)
    assert response.status_code == 201, response.text
    character: dict[str, Any] = response.json()
    if reference:
        response = await client.post(
            f"/api/v1/projects/{project_id}/characters/{character['id']}/references",
            json={"base64": reference_png()},
        )
        assert response.status_code == 201, response.text
        character = response.json()
    return character


async def run_of(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_reaches(
    client: httpx.AsyncClient, run_id: str, *statuses: str, timeout: float = 60.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        run = await run_of(client, run_id)
        return run if run["status"] in statuses else None

    result: dict[str, Any] = await eventually(check, timeout=timeout, interval=0.1)
    return result


async def start_run(client: httpx.AsyncClient, pipeline: str, **params: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/pipelines/{pipeline}/runs", json={"params": params})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body
