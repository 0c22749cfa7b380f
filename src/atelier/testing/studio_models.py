"""Model files the studio's built-in workflows name by default, for a fake that can run
them (tests, `atelier serve --demo`). The fake only lists these names; nothing is loaded.

- first_last_video: diffusion_models/wan2.1_flf2v_720p_14B_fp16.safetensors
- img2video_wan: diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors
- both Wan ones: text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors,
  vae/wan_2.1_vae.safetensors, clip_vision/clip_vision_h.safetensors
- reference_edit, camera_angle: diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors,
  text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors, vae/qwen_image_vae.safetensors
- img2video_svd: checkpoints/svd_xt.safetensors
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

STUDIO_MODELS: dict[str, list[str]] = {
    "checkpoints": ["svd_xt.safetensors"],
    "diffusion_models": [
        "wan2.1_flf2v_720p_14B_fp16.safetensors",
        "wan2.1_i2v_480p_14B_fp16.safetensors",
        "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
    ],
    "text_encoders": [
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "qwen_2.5_vl_7b_fp8_scaled.safetensors",
    ],
    "vae": ["wan_2.1_vae.safetensors", "qwen_image_vae.safetensors"],
    "clip_vision": ["clip_vision_h.safetensors"],
}


def with_studio_models(models: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """These folders plus STUDIO_MODELS (each file once, in order)."""
    merged = {folder: list(files) for folder, files in models.items()}
    for folder, files in STUDIO_MODELS.items():
        listed = merged.setdefault(folder, [])
        listed.extend(f for f in files if f not in listed)
    return merged
