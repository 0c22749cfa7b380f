"""Reading ComfyUI's node schemas (``/object_info``) for templates and the converter.

Each backend answers ``/object_info`` with ``{class: info}``; an input is declared as
``name: [type_or_combo, options]`` under ``required``, ``optional`` or ``hidden``. When no
backend has answered yet, Atelier falls back to the snapshot bundled with the package
(ComfyUI 0.3.64) so that templates can still be described and checked; its model lists
say nothing about any real machine and are not used.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

JsonDict = dict[str, Any]

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
# The frontend adds a hidden "control_after_generate" widget after these INT inputs even
# when the schema does not say so (older nodes).
SEED_NAMES = frozenset({"seed", "noise_seed"})


@functools.cache
def bundled_object_info() -> dict[str, JsonDict]:
    """The /object_info snapshot shipped in the package (read once, never mutated)."""
    path = resources.files("atelier").joinpath("testing/data/object_info.json")
    data: dict[str, JsonDict] = json.loads(path.read_text("utf-8"))
    return data


@dataclass(frozen=True)
class InputSpec:
    """One declared input of one node class."""

    name: str
    kind: str  # INT, FLOAT, STRING, BOOLEAN, COMBO, or a link type such as IMAGE
    section: str  # required, optional
    options: JsonDict = field(default_factory=dict)
    choices: tuple[Any, ...] = ()  # COMBO only

    @property
    def is_widget(self) -> bool:
        """Whether the editor shows it as a widget (and stores it in widgets_values)."""
        if self.options.get("forceInput"):
            return False
        return self.kind in WIDGET_TYPES or self.kind == "COMBO"

    @property
    def has_control_widget(self) -> bool:
        """The editor's hidden seed control ("fixed", "randomize", ...) follows it."""
        flag = self.options.get("control_after_generate")
        if flag is not None:
            return bool(flag)
        return self.kind == "INT" and self.name in SEED_NAMES

    @property
    def is_file_upload(self) -> bool:
        return bool(
            self.options.get("image_upload")
            or self.options.get("video_upload")
            or self.options.get("audio_upload")
        )


def parse_spec(name: str, section: str, raw: Any) -> InputSpec:
    if not isinstance(raw, list) or not raw:
        return InputSpec(name, "*", section)
    kind = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    if isinstance(kind, list):
        return InputSpec(name, "COMBO", section, options, tuple(kind))
    if kind == "COMBO":
        return InputSpec(name, "COMBO", section, options, tuple(options.get("options") or ()))
    return InputSpec(name, str(kind), section, options)


def inputs_of(info: JsonDict) -> list[InputSpec]:
    """Required then optional inputs, in the order the node declares them."""
    declared = info.get("input") or {}
    order = info.get("input_order") or {}
    specs: list[InputSpec] = []
    for section in ("required", "optional"):
        entries = declared.get(section) or {}
        names = [n for n in order.get(section) or [] if n in entries]
        names += [n for n in entries if n not in names]
        specs.extend(parse_spec(n, section, entries[n]) for n in names)
    return specs


def input_spec(info: JsonDict, name: str) -> InputSpec | None:
    return next((s for s in inputs_of(info) if s.name == name), None)


def node_info(schemas: Sequence[JsonDict], class_type: str) -> JsonDict | None:
    """The first schema that knows the class."""
    return next((s[class_type] for s in schemas if class_type in s), None)


def merged_spec(schemas: Sequence[JsonDict], class_type: str, name: str) -> InputSpec | None:
    """The input as all backends together offer it: combos are the union of their lists
    (each backend lists its own model files)."""
    found: InputSpec | None = None
    choices: list[Any] = []
    for schema in schemas:
        info = schema.get(class_type)
        spec = input_spec(info, name) if info else None
        if spec is None:
            continue
        found = found or spec
        choices.extend(c for c in spec.choices if c not in choices)
    if found is not None and found.kind == "COMBO":
        return InputSpec(found.name, found.kind, found.section, found.options, tuple(choices))
    return found


def output_types(info: JsonDict) -> list[str]:
    return [str(t) if not isinstance(t, list) else "COMBO" for t in info.get("output") or []]
