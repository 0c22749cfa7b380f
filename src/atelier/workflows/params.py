"""Typed template parameters: their schema, their validation, and the JSON Schema.

A parameter's type, range, step and allowed values come from the input it is bound to,
as the backends' /object_info declares it (INT, FLOAT, STRING, BOOLEAN, combos such as
``sampler_name`` or ``ckpt_name``), and its default from the graph's own value; the
manifest may narrow them. Model combos list the files of every backend together. A
parameter bound to a LoadImage-like node takes a media input. INT inputs with a seed
control (``seed``, ``noise_seed``) are seeds: -1 or absent draws a random one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atelier.comfyui.capabilities import MODEL_INPUTS, model_folder
from atelier.errors import ValidationFailed
from atelier.workflows.manifest import MEDIA_INPUTS, ParamDecl, Template
from atelier.workflows.schemas import InputSpec, merged_spec

JsonDict = dict[str, Any]

SEED_MAX = 0xFFFFFFFFFFFFFFFF
MEDIA_KINDS = frozenset({"image", "video", "audio"})
MEDIA_FORMS = ("artifact", "url", "base64")
MAX_LORAS = 16
_LORA_TEXT = re.compile(r"^(?P<name>.+?)(?::(?P<strength>-?\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str  # integer, number, string, boolean, seed, image, video, audio, loras
    decl: ParamDecl
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    description: str = ""
    multiline: bool = False

    @property
    def required(self) -> bool:
        return self.kind in MEDIA_KINDS and not self.decl.optional


def build_specs(
    template: Template, schemas: Sequence[JsonDict], *, models_known: bool
) -> list[ParamSpec]:
    return [_spec(template, decl, schemas, models_known) for decl in template.params]


def _spec(
    template: Template, decl: ParamDecl, schemas: Sequence[JsonDict], models_known: bool
) -> ParamSpec:
    if decl.type == "loras" or decl.loader is not None:
        lora = merged_spec(schemas, "LoraLoader", "lora_name")
        strength = merged_spec(schemas, "LoraLoader", "strength_model")
        options = strength.options if strength else {}
        return ParamSpec(
            decl.name,
            "loras",
            decl,
            default=[],
            minimum=options.get("min", -100.0),
            maximum=options.get("max", 100.0),
            choices=lora.choices if lora and models_known else None,
            description=decl.description or "LoRAs applied in order after the model loader.",
        )
    target = decl.targets[0]
    node = template.graph[target.node]
    class_type = node["class_type"]
    value = node["inputs"].get(target.input)
    spec = merged_spec(schemas, class_type, target.input)
    description = decl.description or (str(spec.options.get("tooltip", "")) if spec else "")
    if class_type in MEDIA_INPUTS:
        return ParamSpec(decl.name, MEDIA_INPUTS[class_type][1], decl, description=description)
    kind = decl.type or _kind(spec, value)
    options = spec.options if spec else {}
    choices: tuple[Any, ...] | None = None
    if spec is not None and spec.kind == "COMBO":
        is_model = (class_type, target.input) in MODEL_INPUTS or model_folder(
            class_type, target.input, value
        )
        choices = spec.choices if (models_known or not is_model) else None
    if decl.choices is not None:
        choices = decl.choices
    default = decl.default if decl.has_default else value
    if kind == "seed":
        default = decl.default if decl.has_default else -1
        description = description or "The random seed; -1 or absent draws a random one."
    return ParamSpec(
        decl.name,
        kind,
        decl,
        default=default,
        minimum=_narrow(options.get("min"), decl.minimum, max),
        maximum=_narrow(options.get("max"), decl.maximum, min),
        step=decl.step if decl.step is not None else options.get("step"),
        choices=choices,
        description=description,
        multiline=bool(options.get("multiline")),
    )


def _narrow(schema: Any, manifest: Any, pick: Any) -> float | None:
    values = [v for v in (schema, manifest) if isinstance(v, int | float)]
    return pick(values) if values else None


def _kind(spec: InputSpec | None, value: Any) -> str:
    if spec is not None:
        if spec.kind == "INT":
            return "seed" if spec.has_control_widget else "integer"
        found = {"FLOAT": "number", "STRING": "string", "BOOLEAN": "boolean"}.get(spec.kind)
        if found:
            return found
        if spec.kind == "COMBO":
            return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


# -- JSON Schema ---------------------------------------------------------------------


def json_schema(specs: Sequence[ParamSpec], title: str = "") -> JsonDict:
    properties = {spec.name: property_schema(spec) for spec in specs}
    schema: JsonDict = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if title:
        schema["title"] = title
    required = [spec.name for spec in specs if spec.required]
    if required:
        schema["required"] = required
    return schema


def property_schema(spec: ParamSpec) -> JsonDict:
    out: JsonDict = {}
    if spec.kind in MEDIA_KINDS:
        out = {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {form: {"type": "string"} for form in MEDIA_FORMS},
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                },
            ],
            "x-media": spec.kind,
        }
        hint = (
            f"An {spec.kind}: an artifact id (an upload or an earlier job's output), "
            "an https URL, a data: URI or base64."
        )
        out["description"] = f"{spec.description} {hint}".strip()
        return out
    if spec.kind == "loras":
        name: JsonDict = {"type": "string"}
        if spec.choices is not None:
            name["enum"] = list(spec.choices)
        strength = {"type": "number", "default": 1.0}
        strength.update({"minimum": spec.minimum, "maximum": spec.maximum})
        item = {
            "type": "object",
            "properties": {"name": name, "strength": strength, "strength_clip": strength},
            "required": ["name"],
            "additionalProperties": False,
        }
        out = {
            "type": "array",
            "items": {"anyOf": [item, {"type": "string", "description": "name:strength"}]},
            "maxItems": MAX_LORAS,
            "default": [],
        }
    else:
        json_type = {"seed": "integer"}.get(spec.kind, spec.kind)
        out = {"type": json_type, "default": spec.default}
        if spec.kind == "seed":
            out["minimum"] = -1
            out["maximum"] = spec.maximum if spec.maximum is not None else SEED_MAX
        else:
            if spec.minimum is not None and spec.kind in ("integer", "number"):
                out["minimum"] = spec.minimum
            if spec.maximum is not None and spec.kind in ("integer", "number"):
                out["maximum"] = spec.maximum
        if spec.step is not None and spec.kind in ("integer", "number"):
            out["x-step"] = spec.step
        if spec.choices is not None:
            out["enum"] = list(spec.choices)
        if spec.multiline:
            out["x-multiline"] = True
    if spec.description:
        out["description"] = spec.description
    return out


# -- validation ----------------------------------------------------------------------


def validate(values: Any, specs: Sequence[ParamSpec], *, prefix: str = "") -> JsonDict:
    """The values, type-checked and coerced; raises ValidationFailed naming each
    parameter (``field`` is its name, with ``prefix`` for presets)."""
    if not isinstance(values, dict):
        raise ValidationFailed(
            "parameters must be an object",
            errors=[{"field": prefix or "params", "reason": "not an object"}],
        )
    by_name = {spec.name: spec for spec in specs}
    problems: list[JsonDict] = []
    checked: JsonDict = {}
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(
                {"field": prefix + name, "reason": f"unknown parameter (known: {known})"}
            )
            continue
        try:
            checked[name] = check_value(spec, value)
        except ValueError as exc:
            problems.append({"field": prefix + name, "reason": str(exc)})
    if problems:
        first = problems[0]
        raise ValidationFailed(f"{first['field']}: {first['reason']}", errors=problems)
    return checked


def check_value(spec: ParamSpec, value: Any) -> Any:
    kind = spec.kind
    if kind in MEDIA_KINDS:
        return _media(value)
    if kind == "loras":
        return _loras(spec, value)
    if value is None:
        raise ValueError("must not be null")
    if kind in ("integer", "seed"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expects an integer, got {type(value).__name__}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expects an integer, got {value}")
        value = int(value)
        if kind == "seed" and value == -1:
            return value
    elif kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"expects a number, got {value!r}")
    elif kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"expects a string, got {type(value).__name__}")
    elif kind == "boolean" and not isinstance(value, bool):
        raise ValueError(f"expects true or false, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        shown = ", ".join(map(str, spec.choices[:12])) + (" ..." if len(spec.choices) > 12 else "")
        raise ValueError(f"{value!r} is not one of the allowed values ({shown})")
    if kind in ("integer", "number", "seed"):
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"{value} is below the minimum {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"{value} is above the maximum {spec.maximum}")
    return value


def _media(value: Any) -> JsonDict:
    """{"artifact"|"url"|"base64": str}; strings are sorted by their shape."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in MEDIA_FORMS:
            raise ValueError("an object with one of artifact, url or base64")
        form, text = next(iter(value.items()))
        if not isinstance(text, str) or not text:
            raise ValueError(f"{form} must be a non-empty string")
        return {form: text}
    if not isinstance(value, str) or not value:
        raise ValueError("expects an artifact id, a URL, a data: URI or base64")
    lowered = value[:10].lower()
    if lowered.startswith(("https://", "http://", "s3://")):
        return {"url": value}
    if lowered.startswith("data:"):
        return {"base64": value}
    if re.fullmatch(r"[0-9a-fA-F-]{36}", value):
        return {"artifact": value}
    return {"base64": value}


def _loras(spec: ParamSpec, value: Any) -> list[JsonDict]:
    if not isinstance(value, list):
        raise ValueError("expects a list of LoRAs")
    if len(value) > MAX_LORAS:
        raise ValueError(f"at most {MAX_LORAS} LoRAs")
    loras: list[JsonDict] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            match = _LORA_TEXT.match(item.strip())
            if match is None:
                raise ValueError(f"item {index}: expects 'name' or 'name:strength'")
            item = {"name": match["name"], "strength": float(match["strength"] or 1.0)}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"item {index}: expects {{name, strength}} or 'name:strength'")
        extra = set(item) - {"name", "strength", "strength_clip"}
        if extra:
            raise ValueError(f"item {index}: unknown key {sorted(extra)[0]!r}")
        lora: JsonDict = {"name": item["name"], "strength": 1.0}
        for key in ("strength", "strength_clip"):
            if key not in item:
                continue
            number = item[key]
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"item {index}: {key} expects a number")
            if spec.minimum is not None and number < spec.minimum:
                raise ValueError(f"item {index}: {key} {number} is below {spec.minimum}")
            if spec.maximum is not None and number > spec.maximum:
                raise ValueError(f"item {index}: {key} {number} is above {spec.maximum}")
            lora[key] = float(number)
        if spec.choices is not None and lora["name"] not in spec.choices:
            shown = ", ".join(map(str, spec.choices[:12])) or "none"
            raise ValueError(f"item {index}: {lora['name']!r} is not an available LoRA ({shown})")
        loras.append(lora)
    return loras
