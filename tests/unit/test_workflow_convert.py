"""The UI-format converter: the editor's own rules on small graphs, then every workflow
shipped in the PyPI package comfyui-workflow-templates, against the bundled /object_info."""

from __future__ import annotations

import collections
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from atelier.errors import GraphInvalid, WorkflowNotConvertible
from atelier.workflows import validation
from atelier.workflows.convert import is_ui_format, ui_to_api
from atelier.workflows.schemas import bundled_object_info

SCHEMAS = [bundled_object_info()]
PINNED = "0.11.97"  # pyproject.toml pins this version; the figures below are for it


def ui_node(
    node_id: int,
    kind: str,
    inputs: list[tuple[str, str, int | None]] = (),  # type: ignore[assignment]
    outputs: list[tuple[str, list[int]]] = (),  # type: ignore[assignment]
    widgets: Any = (),
    mode: int = 0,
    title: str | None = None,
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "type": kind,
        "mode": mode,
        "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
        "outputs": [{"name": t, "type": t, "links": links} for t, links in outputs],
        "widgets_values": list(widgets) if not isinstance(widgets, dict) else widgets,
    }
    if title:
        node["title"] = title
    return node


def test_widgets_links_reroutes_primitives_mute_and_bypass() -> None:
    workflow = {
        "nodes": [
            ui_node(
                1,
                "CheckpointLoaderSimple",
                outputs=[("MODEL", [1]), ("CLIP", [2, 3]), ("VAE", [4])],
                widgets=["sd15.safetensors"],
            ),
            ui_node(
                2,
                "CLIPTextEncode",
                [("clip", "CLIP", 2)],
                [("CONDITIONING", [5])],
                ["a cat"],
                title="Positive",
            ),
            ui_node(3, "CLIPTextEncode", [("clip", "CLIP", 3)], [("CONDITIONING", [6])], ["ugly"]),
            ui_node(4, "EmptyLatentImage", outputs=[("LATENT", [7])], widgets=[512, 512, 1]),
            # seed, its hidden "control_after_generate" value, steps, cfg, sampler, scheduler, denoise
            ui_node(
                5,
                "KSampler",
                [
                    ("model", "MODEL", 1),
                    ("positive", "CONDITIONING", 5),
                    ("negative", "CONDITIONING", 6),
                    ("latent_image", "LATENT", 7),
                    ("steps", "INT", 12),
                ],
                [("LATENT", [8])],
                [42, "randomize", 20, 7.5, "euler", "normal", 1.0],
            ),
            ui_node(
                6, "VAEDecode", [("samples", "LATENT", 8), ("vae", "VAE", 9)], [("IMAGE", [10])]
            ),
            ui_node(7, "Reroute", [("", "*", 4)], [("VAE", [9])]),
            ui_node(
                8, "ImageInvert", [("image", "IMAGE", 10)], [("IMAGE", [11])], mode=4
            ),  # bypassed
            ui_node(9, "SaveImage", [("images", "IMAGE", 11)], [], ["out"]),
            ui_node(10, "PreviewImage", [("images", "IMAGE", 13)], [], mode=2),  # muted
            ui_node(11, "PrimitiveNode", outputs=[("INT", [12])], widgets=[7, "fixed"]),
            ui_node(
                12, "ImageBlur", [("image", "IMAGE", None)], [("IMAGE", [13])], [3, 1.0]
            ),  # feeds nothing kept
            ui_node(13, "MarkdownNote", widgets=["notes"]),
        ],
        "links": [
            [1, 1, 0, 5, 0, "MODEL"],
            [2, 1, 1, 2, 0, "CLIP"],
            [3, 1, 1, 3, 0, "CLIP"],
            [4, 1, 2, 7, 0, "VAE"],
            [5, 2, 0, 5, 1, "CONDITIONING"],
            [6, 3, 0, 5, 2, "CONDITIONING"],
            [7, 4, 0, 5, 3, "LATENT"],
            [8, 5, 0, 6, 0, "LATENT"],
            [9, 7, 0, 6, 1, "VAE"],
            [10, 6, 0, 8, 0, "IMAGE"],
            [11, 8, 0, 9, 0, "IMAGE"],
            [12, 11, 0, 5, 4, "INT"],
            [13, 12, 0, 10, 0, "IMAGE"],
        ],
    }
    assert is_ui_format(workflow)
    api = ui_to_api(workflow, SCHEMAS)
    assert sorted(api, key=int) == ["1", "2", "3", "4", "5", "6", "9"]
    assert api["5"]["inputs"] == {
        "model": ["1", 0],
        "seed": 42,
        "steps": 7,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "normal",
        "positive": ["2", 0],
        "negative": ["3", 0],
        "latent_image": ["4", 0],
        "denoise": 1.0,
    }
    assert api["6"]["inputs"] == {"samples": ["5", 0], "vae": ["1", 2]}  # through the reroute
    assert api["9"]["inputs"]["images"] == ["6", 0]  # the bypassed invert passes through
    assert api["2"]["_meta"]["title"] == "Positive"
    assert api["3"]["_meta"]["title"] == "CLIP Text Encode (Prompt)"


def test_dict_widgets_and_subgraphs() -> None:
    subgraph = {
        "id": "sub-1",
        "inputs": [
            {"name": "image", "type": "IMAGE", "linkIds": [101]},
            {"name": "blur_radius", "type": "INT", "linkIds": [102]},
        ],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [103]}],
        "nodes": [
            ui_node(
                1,
                "ImageBlur",
                [("image", "IMAGE", 101), ("blur_radius", "INT", 102)],
                [("IMAGE", [103])],
                {"blur_radius": 2, "sigma": 0.5},
            )
        ],
        "links": [
            {
                "id": 101,
                "origin_id": -10,
                "origin_slot": 0,
                "target_id": 1,
                "target_slot": 0,
                "type": "IMAGE",
            },
            {
                "id": 102,
                "origin_id": -10,
                "origin_slot": 1,
                "target_id": 1,
                "target_slot": 1,
                "type": "INT",
            },
            {
                "id": 103,
                "origin_id": 1,
                "origin_slot": 0,
                "target_id": -20,
                "target_slot": 0,
                "type": "IMAGE",
            },
        ],
    }
    workflow = {
        "nodes": [
            ui_node(1, "EmptyImage", outputs=[("IMAGE", [1])], widgets=[8, 8, 1, 0]),
            ui_node(2, "sub-1", [("image", "IMAGE", 1)], [("IMAGE", [2])], [5]),
            ui_node(3, "SaveImage", [("images", "IMAGE", 2)], widgets=["x"]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
        "definitions": {"subgraphs": [subgraph]},
    }
    api = ui_to_api(workflow, SCHEMAS)
    assert api["2:1"]["inputs"] == {"image": ["1", 0], "blur_radius": 5, "sigma": 0.5}
    assert api["3"]["inputs"]["images"] == ["2:1", 0]


def test_what_cannot_be_converted_is_named() -> None:
    workflow = {
        "nodes": [
            ui_node(1, "SomeCustomNode", outputs=[("IMAGE", [1])]),
            ui_node(2, "workflow>my group", [("images", "IMAGE", 1)]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    with pytest.raises(WorkflowNotConvertible) as caught:
        ui_to_api(workflow, SCHEMAS)
    reasons = {e["node_id"]: e["reason"] for e in caught.value.errors}
    assert "unknown node type 'SomeCustomNode'" in reasons["1"]
    assert "group nodes" in reasons["2"]
    with pytest.raises(WorkflowNotConvertible, match="no output node"):
        ui_to_api({"nodes": [ui_node(1, "EmptyImage", widgets=[8, 8, 1, 0])], "links": []}, SCHEMAS)


def package_workflows() -> list[Path]:
    json_package = pytest.importorskip("comfyui_workflow_templates_json")
    root = Path(os.path.dirname(json_package.__file__)) / "templates"
    return sorted(p for p in root.glob("*.json") if not p.name.startswith("index"))


def survey() -> dict[str, Any]:
    """Convert every workflow of the package; count the outcomes and their reasons."""
    outcomes: collections.Counter[str] = collections.Counter()
    unknown: collections.Counter[str] = collections.Counter()
    drift: collections.Counter[str] = collections.Counter()
    clean_with_subgraphs = 0
    for path in package_workflows():
        data = json.loads(path.read_text())
        if not is_ui_format(data):
            outcomes["not a workflow"] += 1
            continue
        try:
            api = ui_to_api(data, SCHEMAS)
        except WorkflowNotConvertible as exc:
            outcomes["unknown node types"] += 1
            assert all("unknown node type" in e["reason"] for e in exc.errors), exc.errors
            unknown.update({e["node_type"] for e in exc.errors})
            continue
        try:
            graph = validation.check_structure(api, max_nodes=10_000)
            validation.check_against_schemas(graph, SCHEMAS, models_known=False)
        except GraphInvalid as exc:
            outcomes["newer values than the bundled schema"] += 1
            drift.update({e["reason"].split(" (")[0][:50] for e in exc.errors})
            continue
        outcomes["clean"] += 1
        clean_with_subgraphs += bool((data.get("definitions") or {}).get("subgraphs"))
    return {
        "total": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "clean_with_subgraphs": clean_with_subgraphs,
        "unknown": unknown,
        "drift": drift,
    }


def test_the_packages_real_workflows() -> None:
    result = survey()
    print(f"\ncomfyui-workflow-templates {metadata.version('comfyui-workflow-templates')}:")
    print(f"  {result['total']} files: {result['outcomes']}")
    print(f"  clean ones with subgraphs: {result['clean_with_subgraphs']}")
    print(f"  {len(result['unknown'])} node types unknown to the bundled object_info, most used:")
    print("   ", result["unknown"].most_common(12))
    print(
        "  validation problems of the converted-but-not-clean ones:", result["drift"].most_common(6)
    )
    outcomes = result["outcomes"]
    assert outcomes["clean"] >= 90
    if metadata.version("comfyui-workflow-templates") == PINNED:
        assert outcomes == {
            "clean": 100,
            "unknown node types": 528,
            "newer values than the bundled schema": 16,
            "not a workflow": 1,
        }
        assert result["clean_with_subgraphs"] == 26


# -- graphs as the editor saves them --------------------------------------------------

UI_WORKFLOWS = Path(__file__).parents[1] / "data" / "ui_workflows"


def test_the_editors_default_graph_converts_to_what_the_editor_queues() -> None:
    """ComfyUI's default graph (the frontend's defaultGraph.ts): KSampler saves a legacy
    ``true`` in its control slot, and SaveImage is saved with no widget values at all."""
    workflow = json.loads((UI_WORKFLOWS / "default_graph.json").read_text())
    expected = json.loads((UI_WORKFLOWS / "default_graph_api.json").read_text())
    assert ui_to_api(workflow, SCHEMAS) == expected


def _sampler_workflow(widgets: Any) -> dict[str, Any]:
    return {
        "nodes": [
            ui_node(1, "CheckpointLoaderSimple", outputs=[("MODEL", [1])], widgets=["m.ckpt"]),
            ui_node(2, "KSampler", [("model", "MODEL", 1)], [("LATENT", [2])], widgets),
            ui_node(3, "VAEDecode", [("samples", "LATENT", 2)], [("IMAGE", [3])]),
            ui_node(4, "SaveImage", [("images", "IMAGE", 3)], widgets=["out"]),
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "LATENT"], [3, 3, 0, 4, 0, "IMAGE"]],
    }


SAMPLER = {
    "seed": 42,
    "steps": 20,
    "cfg": 7.5,
    "sampler_name": "dpmpp_2m",
    "scheduler": "karras",
    "denoise": 0.5,
}


def _widgets_of(api: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in api["2"]["inputs"].items() if not isinstance(v, list)}


@pytest.mark.parametrize(
    "control",
    ["fixed", "increment", "decrement", "randomize", "increment-wrap", True, False, None],
)
def test_a_control_slot_is_skipped_whatever_it_holds(control: Any) -> None:
    widgets = [42, control, 20, 7.5, "dpmpp_2m", "karras", 0.5]
    assert _widgets_of(ui_to_api(_sampler_workflow(widgets), SCHEMAS)) == SAMPLER


def test_saves_from_before_control_slots_map_one_value_per_widget() -> None:
    widgets = [42, 20, 7.5, "dpmpp_2m", "karras", 0.5]
    assert _widgets_of(ui_to_api(_sampler_workflow(widgets), SCHEMAS)) == SAMPLER


def test_missing_widget_values_take_the_object_info_defaults_and_extra_ones_are_ignored() -> None:
    short = _widgets_of(ui_to_api(_sampler_workflow([42, "fixed", 30]), SCHEMAS))
    assert short == {
        "seed": 42,
        "steps": 30,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "simple",
        "denoise": 1.0,
    }
    long = [42, "randomize", 20, 7.5, "dpmpp_2m", "karras", 0.5, "stray", 99]
    assert _widgets_of(ui_to_api(_sampler_workflow(long), SCHEMAS)) == SAMPLER
    named = _widgets_of(ui_to_api(_sampler_workflow({"seed": 5, "steps": 9}), SCHEMAS))
    assert named["seed"] == 5 and named["steps"] == 9 and named["cfg"] == 8.0


def test_a_node_saved_without_widget_values_gets_every_default() -> None:
    workflow = _sampler_workflow([42, "fixed", 20, 7.5, "dpmpp_2m", "karras", 0.5])
    del workflow["nodes"][1]["widgets_values"]
    del workflow["nodes"][3]["widgets_values"]
    api = ui_to_api(workflow, SCHEMAS)
    assert _widgets_of(api) == {
        "seed": 0,
        "steps": 20,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "simple",
        "denoise": 1.0,
    }
    assert api["4"]["inputs"]["filename_prefix"] == "ComfyUI"
