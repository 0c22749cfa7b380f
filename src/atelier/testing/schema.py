"""Node schemas of the fake ComfyUI, served from the real `/object_info` of ComfyUI 0.3.64.

The bundled JSON is a snapshot of a real server. Two parts of it are dynamic in ComfyUI
(re-evaluated on every request) and are therefore rebuilt here: model combos, which list
the files of the model folders (replaced by the fake's configured `models`), and
LoadImage's combo, which lists the images at the top level of `input/`.
"""

from __future__ import annotations

import copy
import functools
import json
import mimetypes
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]

# Folder names of ComfyUI's `folder_paths.folder_names_and_paths`, in registration order
# (this is what GET /models returns).
STANDARD_MODEL_FOLDERS: tuple[str, ...] = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
)

DEFAULT_MODELS: dict[str, list[str]] = {
    "checkpoints": ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"],
    "loras": ["camera_angle.safetensors", "detail_tweaker.safetensors"],
    "vae": ["vae-ft-mse-840000.safetensors"],
    "upscale_models": ["RealESRGAN_x4plus.pth"],
}

# (class, input name, model folder): combos that ComfyUI fills from a model folder.
MODEL_COMBOS: tuple[tuple[str, str, str], ...] = (
    ("CheckpointLoaderSimple", "ckpt_name", "checkpoints"),
    ("CheckpointLoader", "ckpt_name", "checkpoints"),
    ("CheckpointLoader", "config_name", "configs"),
    ("ImageOnlyCheckpointLoader", "ckpt_name", "checkpoints"),
    ("unCLIPCheckpointLoader", "ckpt_name", "checkpoints"),
    ("LoraLoader", "lora_name", "loras"),
    ("LoraLoaderModelOnly", "lora_name", "loras"),
    ("VAELoader", "vae_name", "vae"),
    ("UpscaleModelLoader", "model_name", "upscale_models"),
    ("CLIPLoader", "clip_name", "text_encoders"),
    ("DualCLIPLoader", "clip_name1", "text_encoders"),
    ("DualCLIPLoader", "clip_name2", "text_encoders"),
    ("UNETLoader", "unet_name", "diffusion_models"),
    ("ControlNetLoader", "control_net_name", "controlnet"),
    ("DiffControlNetLoader", "control_net_name", "controlnet"),
    ("CLIPVisionLoader", "clip_name", "clip_vision"),
    ("StyleModelLoader", "style_model_name", "style_models"),
    ("GLIGENLoader", "gligen_name", "gligen"),
    ("HypernetworkLoader", "hypernetwork_name", "hypernetworks"),
)

# Classes whose VALIDATE_INPUTS takes these inputs: validation skips combo/min/max for
# them and runs the custom check instead (execution.py:868).
CUSTOM_VALIDATED_INPUTS: dict[str, tuple[str, ...]] = {
    "LoadImage": ("image",),
    "LoadImageMask": ("image",),
}

_AUDIO_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}

# The snapshot was taken on a build without torchaudio, so comfy_extras/nodes_audio.py did
# not load. These entries follow that module's INPUT_TYPES so the audio nodes exist here.
SUPPLEMENTARY_NODES: dict[str, JsonDict] = {
    "EmptyAudio": {
        "input": {
            "required": {
                "duration": [
                    "FLOAT",
                    {
                        "default": 60.0,
                        "min": 0.0,
                        "max": 18446744073709551615,
                        "step": 0.01,
                        "tooltip": "Duration of the empty audio clip in seconds",
                    },
                ],
                "sample_rate": [
                    "INT",
                    {"default": 44100, "tooltip": "Sample rate of the empty audio clip."},
                ],
                "channels": [
                    "INT",
                    {
                        "default": 2,
                        "min": 1,
                        "max": 2,
                        "tooltip": "Number of audio channels (1 for mono, 2 for stereo).",
                    },
                ],
            }
        },
        "input_order": {"required": ["duration", "sample_rate", "channels"]},
        "output": ["AUDIO"],
        "output_is_list": [False],
        "output_name": ["AUDIO"],
        "name": "EmptyAudio",
        "display_name": "Empty Audio",
        "description": "",
        "python_module": "comfy_extras.nodes_audio",
        "category": "audio",
        "output_node": False,
    },
    "SaveAudio": {
        "input": {
            "required": {
                "audio": ["AUDIO"],
                "filename_prefix": ["STRING", {"default": "audio/ComfyUI"}],
            },
            "hidden": dict(_AUDIO_HIDDEN),
        },
        "input_order": {"required": ["audio", "filename_prefix"], "hidden": list(_AUDIO_HIDDEN)},
        "output": [],
        "output_is_list": [],
        "output_name": [],
        "name": "SaveAudio",
        "display_name": "Save Audio (FLAC)",
        "description": "",
        "python_module": "comfy_extras.nodes_audio",
        "category": "audio",
        "output_node": True,
    },
    "PreviewAudio": {
        "input": {"required": {"audio": ["AUDIO"]}, "hidden": dict(_AUDIO_HIDDEN)},
        "input_order": {"required": ["audio"], "hidden": list(_AUDIO_HIDDEN)},
        "output": [],
        "output_is_list": [],
        "output_name": [],
        "name": "PreviewAudio",
        "display_name": "Preview Audio",
        "description": "",
        "python_module": "comfy_extras.nodes_audio",
        "category": "audio",
        "output_node": True,
    },
}

InputSpec = tuple[Any, str, JsonDict]
"""(input type or combo list, category "required"/"optional"/"hidden", options dict)."""


@functools.cache
def _bundled_object_info() -> Mapping[str, JsonDict]:
    text = resources.files("atelier.testing").joinpath("data/object_info.json").read_text("utf-8")
    info: dict[str, JsonDict] = json.loads(text)
    for name, entry in SUPPLEMENTARY_NODES.items():
        info.setdefault(name, entry)
    return info


def list_input_images(input_dir: Path) -> list[str]:
    """LoadImage's combo: image files at the top level of input/, sorted."""
    if not input_dir.is_dir():
        return []
    names = [p.name for p in input_dir.iterdir() if p.is_file()]
    return sorted(n for n in names if (mimetypes.guess_type(n)[0] or "").startswith("image/"))


def list_input_files(input_dir: Path) -> list[str]:
    if not input_dir.is_dir():
        return []
    return sorted(p.name for p in input_dir.iterdir() if p.is_file())


def _set_combo(spec: list[Any], options: Sequence[str]) -> None:
    if spec and spec[0] == "COMBO":
        if len(spec) < 2:
            spec.append({})
        spec[1]["options"] = list(options)
    else:
        spec[0] = list(options)


class NodeSchemas:
    """The node catalogue as one request of ComfyUI would see it."""

    def __init__(
        self,
        models: Mapping[str, Sequence[str]],
        input_dir: Path,
        custom_nodes: Mapping[str, JsonDict] | None = None,
    ) -> None:
        self._models = models
        self._input_dir = input_dir
        base = _bundled_object_info()
        # Custom node classes a fake was given (the demo's simulated AnimateDiff).
        self._base = {**base, **custom_nodes} if custom_nodes else base
        self._patched: dict[str, JsonDict] = {}

    def model_files(self, folder: str) -> list[str]:
        return sorted(self._models.get(folder, []))

    def _combo_options(self, class_type: str, folder: str) -> list[str]:
        files = self.model_files(folder)
        if class_type == "VAELoader":
            files.append("pixel_space")
        return files

    def _patch(self, class_type: str) -> JsonDict | None:
        base = self._base.get(class_type)
        if base is None:
            return None
        dynamic = [(name, folder) for cls, name, folder in MODEL_COMBOS if cls == class_type]
        if not dynamic and class_type not in CUSTOM_VALIDATED_INPUTS:
            return base
        entry = copy.deepcopy(base)
        sections = entry.get("input", {})
        for name, folder in dynamic:
            for section in ("required", "optional"):
                spec = sections.get(section, {}).get(name)
                if isinstance(spec, list) and spec:
                    _set_combo(spec, self._combo_options(class_type, folder))
        if class_type == "LoadImage":
            _set_combo(sections["required"]["image"], list_input_images(self._input_dir))
        elif class_type == "LoadImageMask":
            _set_combo(sections["required"]["image"], list_input_files(self._input_dir))
        return entry

    def get(self, class_type: str) -> JsonDict | None:
        if class_type not in self._patched:
            entry = self._patch(class_type)
            if entry is None:
                return None
            self._patched[class_type] = entry
        return self._patched[class_type]

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and class_type in self._base

    def all(self) -> dict[str, JsonDict]:
        out: dict[str, JsonDict] = {}
        for name in self._base:
            entry = self.get(name)
            if entry is not None:
                out[name] = entry
        return out

    def is_output_node(self, class_type: str) -> bool:
        entry = self.get(class_type)
        return bool(entry and entry.get("output_node") is True)

    def return_types(self, class_type: str) -> list[Any]:
        entry = self.get(class_type)
        return list(entry.get("output", [])) if entry else []

    def input_names(self, class_type: str, *categories: str) -> list[str]:
        """Input names in declaration order (ComfyUI iterates a set; order is ours)."""
        entry = self.get(class_type) or {}
        names: list[str] = []
        for category in categories or ("required", "optional"):
            names.extend(entry.get("input", {}).get(category, {}).keys())
        return names

    def input_spec(self, class_type: str, input_name: str) -> InputSpec | None:
        entry = self.get(class_type) or {}
        inputs = entry.get("input", {})
        for category in ("required", "optional", "hidden"):
            section = inputs.get(category, {})
            if input_name in section:
                raw = section[input_name]
                if category == "hidden":
                    return raw, category, {}
                options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
                return raw[0], category, options
        return None

    def hidden_inputs(self, class_type: str) -> dict[str, str]:
        entry = self.get(class_type) or {}
        hidden = entry.get("input", {}).get("hidden", {})
        return {k: v for k, v in hidden.items() if isinstance(v, str)}
