"""Which installed model a template's model input defaults to."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.workflows.models import choose, family


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v1-5-pruned-emaonly.safetensors", "sd15"),
        ("v1-5-pruned-emaonly-fp16.safetensors", "sd15"),
        ("sd-v1-5-inpainting.ckpt", "sd15-inpaint"),
        ("sd_xl_base_1.0.safetensors", "sdxl"),
        ("juggernautXL_v9.safetensors", "sdxl"),
        ("sd_xl_base_1.0_inpainting_0.1.safetensors", "sdxl-inpaint"),
        ("svd_xt.safetensors", "svd"),
        ("flux1-dev-kontext_fp8_scaled.safetensors", "flux"),
        ("dreamshaper_8.safetensors", None),
        ("realisticVisionV60B1_v51VAE.safetensors", None),
    ],
)
def test_family_from_the_file_name(name: str, expected: str | None) -> None:
    assert family(name) == expected


SD15 = "v1-5-pruned-emaonly.safetensors"


def test_the_template_default_wins_when_installed() -> None:
    available = {"checkpoints": ["a_xl.safetensors", SD15, "dreamshaper_8.safetensors"]}
    assert choose("checkpoints", SD15, [], available) == SD15


def test_then_the_preferred_files_in_order() -> None:
    available = {"checkpoints": ["b.safetensors", "v1-5-pruned.safetensors"]}
    preferred = ["missing.safetensors", "b.safetensors"]
    assert choose("checkpoints", SD15, preferred, available) == "b.safetensors"


def test_then_the_same_family_then_an_unnamed_checkpoint_for_sd15() -> None:
    named = {"checkpoints": ["dreamshaper_8.safetensors", "sd15_anime.safetensors"]}
    assert choose("checkpoints", SD15, [], named) == "sd15_anime.safetensors"
    unnamed = {"checkpoints": ["sd_xl_base_1.0.safetensors", "dreamshaper_8.safetensors"]}
    assert choose("checkpoints", SD15, [], unnamed) == "dreamshaper_8.safetensors"


def test_never_another_family() -> None:
    xl_only = {"checkpoints": ["sd_xl_base_1.0.safetensors"]}
    assert choose("checkpoints", SD15, [], xl_only) is None
    assert choose("checkpoints", "sd_xl_base_1.0.safetensors", [], {"checkpoints": [SD15]}) is None
    # An inpainting model stands in only for an inpainting model, and unnamed files
    # stand in for plain SD 1.5 only.
    plain = {"checkpoints": [SD15, "dreamshaper_8.safetensors"]}
    assert choose("checkpoints", "sd-v1-5-inpainting.ckpt", [], plain) is None
    assert choose("upscale_models", "RealESRGAN_x4plus.pth", [], {"upscale_models": []}) is None


def test_builtin_manifests_keep_their_preferred_files() -> None:
    from atelier.workflows.manifest import load, parse_text

    folder = Path(__file__).parents[2] / "src/atelier/workflows/builtin"
    data = parse_text((folder / "txt2img_sd15.yaml").read_text(), source="txt2img_sd15.yaml")
    template = load(data, name="txt2img_sd15", schemas=[], base_dir=folder)
    checkpoint = template.param("checkpoint")
    assert checkpoint is not None and checkpoint.prefer[0] == "v1-5-pruned-emaonly-fp16.safetensors"
    assert template.stored()["parameters"][2]["prefer"] == list(checkpoint.prefer)
