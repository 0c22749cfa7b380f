"""Shared bits of the workflow tests: model files for the fake, and small real images."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from atelier.testing.studio_models import with_studio_models
from tests.helpers import job_reaches

WAIT = {"Prefer": "wait=30"}


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """Assert a problem+json answer of this status and type; return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://atelier.dev/problems/{slug}", body
    return body


async def run(client: Any, name: str, params: dict[str, Any], **query: Any) -> dict[str, Any]:
    """Run a workflow through its typed endpoint and return the completed job."""
    response = await client.post(
        f"/api/v1/workflows/{name}/jobs", json=params, params=query, headers=WAIT
    )
    assert response.status_code in (200, 202), response.text
    job: dict[str, Any] = response.json()
    if job["status"] not in ("completed", "failed", "cancelled"):
        job = await job_reaches(client, job["id"], "completed", "failed", "cancelled")
    assert job["status"] == "completed", job["error"]
    return job


# Every model file a built-in template names by default, so the fake can run them all.
BUILTIN_MODELS: dict[str, list[str]] = with_studio_models(
    {
        "checkpoints": [
            "v1-5-pruned-emaonly.safetensors",
            "sd_xl_base_1.0.safetensors",
            "sd-v1-5-inpainting.ckpt",
            "svd_xt.safetensors",
        ],
        "loras": [
            "Qwen-Edit-2509-Multiple-angles.safetensors",
            "detail_tweaker.safetensors",
            "film_grain.safetensors",
        ],
        "vae": ["ae.safetensors", "qwen_image_vae.safetensors"],
        "upscale_models": ["RealESRGAN_x4plus.pth"],
        "diffusion_models": [
            "flux1-dev-kontext_fp8_scaled.safetensors",
            "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
        ],
        "text_encoders": [
            "clip_l.safetensors",
            "t5xxl_fp8_e4m3fn_scaled.safetensors",
            "qwen_2.5_vl_7b_fp8_scaled.safetensors",
        ],
    }
)


def png(color: tuple[int, ...] = (255, 0, 0), size: tuple[int, int] = (32, 24)) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def b64png(color: tuple[int, ...] = (255, 0, 0), size: tuple[int, int] = (32, 24)) -> str:
    return base64.b64encode(png(color, size)).decode()


def data_uri(color: tuple[int, ...] = (255, 0, 0), size: tuple[int, int] = (32, 24)) -> str:
    return "data:image/png;base64," + b64png(color, size)


async def image_of(client: Any, artifact: dict[str, Any]) -> Image.Image:
    response = await client.get(artifact["url"])
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image
