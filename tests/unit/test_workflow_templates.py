"""Templates without a server: the built-ins against the bundled /object_info, parameter
types and errors, seeds, pruning of optional images, LoRA chains, manifest errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from atelier.comfyui.capabilities import backend_models, graph_models, model_folder
from atelier.errors import ValidationFailed, WorkflowInvalid
from atelier.workflows import graphops, manifest
from atelier.workflows.params import build_specs, json_schema, validate
from atelier.workflows.registry import BUILTIN_DIR, manifest_files
from atelier.workflows.render import check_template, render
from atelier.workflows.schemas import bundled_object_info

SCHEMAS = [bundled_object_info()]


def builtin(name: str) -> manifest.Template:
    path = BUILTIN_DIR / f"{name}.yaml"
    data = manifest.parse_text(path.read_text(), source=path.name)
    return manifest.load(data, name=name, schemas=SCHEMAS, source="builtin", base_dir=BUILTIN_DIR)


BUILTINS = [p.name.split(".")[0] for p in manifest_files(BUILTIN_DIR)]


def test_the_builtins_are_all_there() -> None:
    assert sorted(BUILTINS) == sorted(
        [
            "txt2img_sd15",
            "txt2img_sdxl",
            "img2img",
            "inpaint",
            "upscale",
            "image_edit",
            "camera_angle",
            "txt2video_animatediff",
            "img2video_svd",
            "resize",
            "blur",
            "invert",
            "webp_animation",
            "first_last_video",
            "img2video_wan",
            "reference_edit",
        ]
    )


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_validates_against_the_bundled_object_info(name: str) -> None:
    template = builtin(name)
    specs = build_specs(template, SCHEMAS, models_known=False)
    warnings = check_template(template, specs, SCHEMAS)  # raises on any real problem
    if name == "txt2video_animatediff":  # AnimateDiff's classes are custom nodes
        assert [w["node_type"] for w in warnings] == ["ADE_AnimateDiffLoaderGen1"]
        assert template.requires_models == ["animatediff_models/mm_sd_v15_v2.ckpt"]
    else:
        assert warnings == []
    assert template.description and specs
    assert json_schema(specs)["additionalProperties"] is False


def test_types_ranges_and_choices_come_from_object_info() -> None:
    template = builtin("txt2img_sd15")
    specs = {s.name: s for s in build_specs(template, SCHEMAS, models_known=False)}
    assert (specs["steps"].kind, specs["steps"].minimum, specs["steps"].maximum) == (
        "integer",
        1,
        150,
    )
    assert specs["steps"].default == 20  # the graph's own value
    assert specs["cfg"].kind == "number" and specs["cfg"].step == 0.1
    assert specs["sampler"].choices is not None and "dpmpp_2m" in specs["sampler"].choices
    assert specs["seed"].kind == "seed" and specs["seed"].default == -1
    assert specs["checkpoint"].choices is None  # the bundled snapshot's files mean nothing
    assert specs["width"].minimum == 64 and specs["width"].maximum == 2048
    live = [copy.deepcopy(bundled_object_info())]
    live[0]["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["a.safetensors"]
    specs = {s.name: s for s in build_specs(template, live, models_known=True)}
    assert specs["checkpoint"].choices == ("a.safetensors",)


def test_validation_names_each_parameter() -> None:
    specs = build_specs(builtin("txt2img_sd15"), SCHEMAS, models_known=False)
    assert validate({"steps": 12.0, "cfg": 5, "seed": -1}, specs) == {
        "steps": 12,
        "cfg": 5,
        "seed": -1,
    }
    with pytest.raises(ValidationFailed) as caught:
        validate({"steps": True, "cfg": "high", "width": 8, "scheduler": "x", "nope": 1}, specs)
    fields = {e["field"]: e["reason"] for e in caught.value.extra["errors"]}
    assert set(fields) == {"steps", "cfg", "width", "scheduler", "nope"}
    assert fields["width"] == "8 is below the minimum 64"
    assert validate({"loras": ["x.safetensors", "y.safetensors:-0.5"]}, specs)["loras"] == [
        {"name": "x.safetensors", "strength": 1.0},
        {"name": "y.safetensors", "strength": -0.5},
    ]
    with pytest.raises(ValidationFailed, match="strength"):
        validate({"loras": [{"name": "x", "strength": "strong"}]}, specs)
    media = build_specs(builtin("invert"), SCHEMAS, models_known=False)
    assert validate({"image": "https://example.com/a.png"}, media) == {
        "image": {"url": "https://example.com/a.png"}
    }
    assert validate({"image": "0f8fad5b-d9cb-469f-a165-70867728950e"}, media)["image"] == {
        "artifact": "0f8fad5b-d9cb-469f-a165-70867728950e"
    }
    assert "base64" in validate({"image": "data:image/png;base64,AAAA"}, media)["image"]
    with pytest.raises(ValidationFailed):
        validate({"image": {"url": "x", "base64": "y"}}, media)


def test_seeds_are_drawn_when_absent_or_minus_one() -> None:
    template = builtin("txt2img_sd15")
    specs = build_specs(template, SCHEMAS, models_known=False)
    seeds = {render(template, specs, {}, SCHEMAS).params["seed"] for _ in range(5)}
    assert len(seeds) == 5 and all(0 <= s < 2**53 for s in seeds)
    fixed = render(template, specs, {"seed": 7}, SCHEMAS)
    assert fixed.params["seed"] == 7 and fixed.graph["3"]["inputs"]["seed"] == 7


def test_optional_images_are_pruned_with_what_they_fed() -> None:
    template = builtin("image_edit")
    specs = build_specs(template, SCHEMAS, models_known=False)
    one = {"image": {"artifact": "a"}}
    graph = render(template, specs, one, SCHEMAS).graph
    assert "11" not in graph and "12" not in graph
    assert "image2" not in graph["13"]["inputs"] and "image2" not in graph["14"]["inputs"]
    assert graph["10"]["inputs"]["image"] == "@param:image"
    graph = render(template, specs, {**one, "image3": {"artifact": "c"}}, SCHEMAS).graph
    assert "11" not in graph and graph["14"]["inputs"]["image2"] == ["12", 0]

    # ImageBatch's image2 is required: without it the node is bypassed (image1 goes on).
    frames = builtin("webp_animation")
    specs = build_specs(frames, SCHEMAS, models_known=False)
    graph = render(frames, specs, {"frame1": {"artifact": "a"}}, SCHEMAS).graph
    assert sorted(graph) == ["1", "6"]
    assert graph["6"]["inputs"]["images"] == ["1", 0]
    graph = render(
        frames, specs, {"frame1": {"artifact": "a"}, "frame3": {"artifact": "c"}}, SCHEMAS
    ).graph
    assert sorted(graph) == ["1", "3", "5", "6"] and graph["5"]["inputs"]["image1"] == ["1", 0]
    with pytest.raises(ValidationFailed, match="frame1"):
        render(frames, specs, {}, SCHEMAS)


def test_pruning_removes_nodes_that_lose_a_required_input() -> None:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "a"}},
        "4": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "b"}},
    }
    assert sorted(graphops.prune(graph, ["1"], SCHEMAS)) == ["4", "5"]


def test_loras_are_chained_between_the_loader_and_its_consumers() -> None:
    template = builtin("txt2img_sd15")
    specs = build_specs(template, SCHEMAS, models_known=False)
    loras = [{"name": "a.safetensors", "strength": 0.8}, {"name": "b.safetensors", "strength": 0.2}]
    graph = render(template, specs, {"loras": loras}, SCHEMAS).graph
    first, second = graph["10"], graph["11"]
    assert first["class_type"] == second["class_type"] == "LoraLoader"
    assert first["inputs"] == {
        "model": ["4", 0],
        "clip": ["4", 1],
        "lora_name": "a.safetensors",
        "strength_model": 0.8,
        "strength_clip": 0.8,
    }
    assert second["inputs"]["model"] == ["10", 0] and second["inputs"]["clip"] == ["10", 1]
    assert graph["3"]["inputs"]["model"] == ["11", 0]
    assert graph["6"]["inputs"]["clip"] == graph["7"]["inputs"]["clip"] == ["11", 1]
    assert graph["8"]["inputs"]["vae"] == ["4", 2]  # the VAE is not a LoRA's business
    # A diffusion-model loader has no CLIP output: model-only LoRAs.
    camera = builtin("camera_angle")
    specs = build_specs(camera, SCHEMAS, models_known=False)
    graph = render(camera, specs, {"image": {"artifact": "a"}, "loras": loras[:1]}, SCHEMAS).graph
    assert graph["18"]["class_type"] == "LoraLoaderModelOnly"
    assert graph["18"]["inputs"]["model"] == ["1", 0] and graph["2"]["inputs"]["model"] == ["18", 0]


def test_manifest_problems_are_named() -> None:
    graph = builtin("invert").graph
    cases: list[tuple[dict[str, Any], str]] = [
        ({"graph": graph, "parameters": [{"name": "x", "node": "99"}]}, "parameters.x"),
        (
            {"graph": graph, "parameters": [{"name": "x", "node": "2", "input": "image"}]},
            "parameters.x",
        ),
        ({"graph": graph, "parameters": [{"name": "1bad", "node": "1"}]}, "parameters.1bad"),
        (
            {"graph": graph, "parameters": {"img": "Image"}, "presets": {"p": {"zz": 1}}},
            "presets.p.zz",
        ),
        ({"graph": "file.json"}, "graph"),
        ({"graph": {"1": "not a node"}}, "graph"),
    ]
    for data, field in cases:
        with pytest.raises(WorkflowInvalid) as caught:
            manifest.load(data, name="t", schemas=SCHEMAS)
        assert caught.value.errors[0]["field"] == field, caught.value.errors
    with pytest.raises(WorkflowInvalid, match="aliases"):
        manifest.parse_text("a: &x [1, 2]\nb: [*x, *x]\n", source="body")
    short = manifest.load(
        {"graph": graph, "parameters": {"img": "Image"}}, name="t", schemas=SCHEMAS
    )
    assert short.params[0].targets[0] == manifest.Target("1", "image")


def test_model_requirements_of_graphs_and_backends() -> None:
    graph = builtin("camera_angle").graph
    assert graph_models(graph) == {
        "diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors",
        "loras/Qwen-Edit-2509-Multiple-angles.safetensors",
        "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
        "vae/qwen_image_vae.safetensors",
    }
    assert (
        model_folder("SomeCustomLoader", "model_name", "x.safetensors")
        == "SomeCustomLoader.model_name"
    )
    assert model_folder("SomeNode", "text", "x.safetensors") is None
    assert model_folder("VAELoader", "vae_name", "pixel_space") is None
    models = backend_models(bundled_object_info())
    assert models is not None and "checkpoints/tiny-sd15-random.safetensors" in models
