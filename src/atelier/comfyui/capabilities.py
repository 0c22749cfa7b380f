"""What a graph needs from a backend (node classes, model files) and what each backend has.

A backend's model files are read from its own ``/object_info``: ComfyUI fills the combo of
every loader input (``ckpt_name``, ``lora_name``...) from the model folder on that
machine, and re-reads it on each request, so the pool's refresh of /object_info keeps
them fresh. Model requirements are written ``folder/file`` (``checkpoints/x.safetensors``);
inputs of loaders Atelier does not know by name are recognised by their ``*_name`` input
and a model file extension, and filed under ``Class.input``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from atelier.errors import CapabilityMissing

# (class, input) -> model folder, for ComfyUI's core loaders and well-known custom ones.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "config_name"): "configs",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    # AnimateDiff-Evolved (custom nodes)
    ("ADE_LoadAnimateDiffModel", "model_name"): "animatediff_models",
    ("ADE_AnimateDiffLoaderGen1", "model_name"): "animatediff_models",
    ("ADE_AnimateDiffLoaderWithContext", "model_name"): "animatediff_models",
    ("ADE_AnimateDiffLoRALoader", "name"): "animatediff_motion_lora",
}

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".sft", ".gguf")
_NAME_INPUT = re.compile(r"(^|_)name\d*$")
# VAELoader offers these built-in choices besides files.
_NOT_FILES = frozenset({"pixel_space", "taesd", "taesdxl", "taesd3", "taef1", "None", "none"})


def model_folder(class_type: str, input_name: str, value: Any) -> str | None:
    """The model folder an input's value is a file of, or None if it is not a model."""
    if not isinstance(value, str) or value in _NOT_FILES:
        return None
    folder = MODEL_INPUTS.get((class_type, input_name))
    if folder is not None:
        return folder
    if _NAME_INPUT.search(input_name) and value.lower().endswith(MODEL_EXTENSIONS):
        return f"{class_type}.{input_name}"
    return None


def graph_classes(graph: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        str(node.get("class_type")) for node in graph.values() if isinstance(node, dict)
    )


def graph_models(graph: dict[str, Any]) -> frozenset[str]:
    """Every model file the graph names, as ``folder/file``."""
    found: set[str] = set()
    for node in graph.values():
        if not isinstance(node, dict):
            continue
        class_type = str(node.get("class_type"))
        for name, value in (node.get("inputs") or {}).items():
            folder = model_folder(class_type, name, value)
            if folder is not None:
                found.add(f"{folder}/{value}")
    return frozenset(found)


_CACHE: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}
CACHE_SIZE = 16


def backend_models(object_info: dict[str, Any] | None) -> frozenset[str] | None:
    """Every model file a backend's /object_info lists, as ``folder/file``; None if its
    /object_info is not known yet. Cached per /object_info answer."""
    if object_info is None:
        return None
    cached = _CACHE.get(id(object_info))
    if cached is not None and cached[0] is object_info:
        return cached[1]
    found: set[str] = set()
    for class_type, info in object_info.items():
        declared = (info or {}).get("input") or {}
        for section in ("required", "optional"):
            for name, spec in (declared.get(section) or {}).items():
                for choice in _choices(spec):
                    folder = model_folder(class_type, name, choice)
                    if folder is not None:
                        found.add(f"{folder}/{choice}")
    result = frozenset(found)
    while len(_CACHE) >= CACHE_SIZE:  # forget the oldest answers (1-2 ms to recompute)
        del _CACHE[next(iter(_CACHE))]
    _CACHE[id(object_info)] = (object_info, result)
    return result


def _choices(spec: Any) -> list[Any]:
    if not isinstance(spec, list) or not spec:
        return []
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return list(spec[1].get("options") or [])
    return []


def missing_on(
    object_info: dict[str, Any], classes: Iterable[str], models: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(node classes, model files) the graph needs and this backend lacks."""
    have_models = backend_models(object_info) or frozenset()
    return (
        sorted(c for c in classes if c not in object_info),
        sorted(m for m in models if m not in have_models),
    )


def check_runnable(
    graph: dict[str, Any],
    backends: Iterable[tuple[str, dict[str, Any] | None]],
    *,
    extra_classes: Iterable[str] = (),
    extra_models: Iterable[str] = (),
) -> None:
    """Raise CapabilityMissing unless some backend has every class and model the graph
    (plus the extras a template declares) needs.

    ``backends`` are (name, /object_info or None). A backend whose capabilities are not
    known yet might be able to run it, so nothing is refused while there is one.
    """
    classes = graph_classes(graph) | frozenset(extra_classes)
    models = graph_models(graph) | frozenset(extra_models)
    report: list[dict[str, Any]] = []
    for name, object_info in backends:
        if object_info is None:
            return
        missing_classes, missing_models = missing_on(object_info, classes, models)
        if not missing_classes and not missing_models:
            return
        report.append({"backend": name, "node_classes": missing_classes, "models": missing_models})
    if not report:
        return  # no backend configured: the job waits for one
    all_classes = sorted({c for r in report for c in r["node_classes"]})
    all_models = sorted({m for r in report for m in r["models"]})
    parts = []
    if all_classes:
        parts.append("node classes " + ", ".join(all_classes))
    if all_models:
        parts.append("model files " + ", ".join(all_models))
    raise CapabilityMissing(
        "no backend can run this job: it needs "
        + " and ".join(parts)
        + " ("
        + "; ".join(
            f"{r['backend']} lacks {', '.join(r['node_classes'] + r['models'])}" for r in report
        )
        + ")",
        missing={"node_classes": all_classes, "models": all_models},
        backends=report,
    )
