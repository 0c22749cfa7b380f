"""The fake ComfyUI that ``atelier serve --demo`` starts: every built-in workflow runs.

It holds a model file for every built-in template (names as the templates expect them)
and, for ``txt2video_animatediff``, the AnimateDiff-Evolved loader as a SIMULATED custom
node: its /object_info entry says so in ``description`` and ``python_module``, and the
fake runs it like any model node it does not implement (outputs of the declared types).
Only the demo has it; tests that need a stock ComfyUI do not see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atelier.testing.fake_comfyui import FakeComfyUI
from atelier.testing.studio_models import with_studio_models

MOTION_MODELS = ["mm_sd_v15_v2.ckpt"]

DEMO_MODELS: dict[str, list[str]] = {
    "checkpoints": [
        "v1-5-pruned-emaonly.safetensors",
        "sd_xl_base_1.0.safetensors",
        "sd-v1-5-inpainting.ckpt",
        "svd_xt.safetensors",
    ],
    "loras": [
        "Qwen-Edit-2509-Multiple-angles.safetensors",
        "camera_angle.safetensors",
        "detail_tweaker.safetensors",
        "film_grain.safetensors",
    ],
    "vae": ["ae.safetensors", "qwen_image_vae.safetensors", "vae-ft-mse-840000.safetensors"],
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
    "animatediff_models": MOTION_MODELS,
}

SIMULATED = "SIMULATED by the Atelier demo (no AnimateDiff code runs): "
BETA_SCHEDULES = [
    "autoselect",
    "sqrt_linear (AnimateDiff)",
    "linear (AnimateDiff-SDXL)",
    "linear (HotshotXL/default)",
    "avg(sqrt_linear,linear)",
    "lcm avg(sqrt_linear,linear)",
    "lcm",
    "lcm[100_ots]",
    "lcm >> sqrt_linear",
    "use existing",
    "sqrt",
    "cosine",
    "squaredcos_cap_v2",
]

SIMULATED_CUSTOM_NODES: dict[str, dict[str, Any]] = {
    "ADE_AnimateDiffLoaderGen1": {
        "input": {
            "required": {
                "model": ["MODEL"],
                "model_name": [MOTION_MODELS],
                "beta_schedule": [BETA_SCHEDULES, {"default": "autoselect"}],
            },
            "optional": {
                "context_options": ["CONTEXT_OPTIONS"],
                "motion_lora": ["MOTION_LORA"],
                "ad_settings": ["AD_SETTINGS"],
                "sample_settings": ["SAMPLE_SETTINGS"],
            },
        },
        "input_order": {
            "required": ["model", "model_name", "beta_schedule"],
            "optional": ["context_options", "motion_lora", "ad_settings", "sample_settings"],
        },
        "output": ["MODEL"],
        "output_is_list": [False],
        "output_name": ["MODEL"],
        "name": "ADE_AnimateDiffLoaderGen1",
        "display_name": "AnimateDiff Loader 🎭🅐🅓① (simulated)",
        "description": SIMULATED + "ComfyUI-AnimateDiff-Evolved's Gen1 loader.",
        "python_module": "custom_nodes.atelier-demo-simulated-AnimateDiff-Evolved",
        "category": "Animate Diff 🎭🅐🅓/① Gen1 nodes ①",
        "output_node": False,
    },
}


def demo_comfyui(root_dir: Path, *, step_time: float) -> FakeComfyUI:
    return FakeComfyUI(
        root_dir=root_dir,
        step_time=step_time,
        models=with_studio_models(DEMO_MODELS),  # the studio's video and edit models too
        custom_nodes=SIMULATED_CUSTOM_NODES,
        name="demo",
    )
