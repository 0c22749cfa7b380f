"""Workflow templates: a ComfyUI graph plus a small manifest naming its parameters.

A manifest (YAML or JSON) looks like this; everything but ``graph`` is optional::

    description: Text to image with an SD 1.5 checkpoint.
    graph: txt2img_sd15.json        # a file beside the manifest, or the graph inline
    parameters:
      - {name: prompt, node: Positive}          # a node id or its _meta.title
      - {name: steps, node: "3", input: steps, maximum: 60}
      - {name: image, node: Load Image, optional: true}
      - {name: loras, type: loras, node: "4"}   # LoRA chain after this loader
      - {name: checkpoint, node: "4", prefer: [dreamshaper_8.safetensors]}  # model defaults
    presets:
      fast_preview: {steps: 8}
    requires:                                    # what the graph alone does not say
      models: [animatediff_models/mm_sd_v15_v2.ckpt]

``parameters`` may also be a mapping ``{prompt: "6.text", image: "Load Image"}``. Types,
ranges, defaults and allowed values come from the backends' /object_info and the graph's
own values (see params.py); a manifest may narrow them. UI-format graphs are converted
to API format when the template is loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atelier import documents
from atelier.errors import WorkflowInvalid
from atelier.workflows import convert

JsonDict = dict[str, Any]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Loader classes whose input takes a file, and which kind of file: (input, kind).
MEDIA_INPUTS: dict[str, tuple[str, str]] = {
    "LoadImage": ("image", "image"),
    "LoadImageMask": ("image", "image"),
    "LoadVideo": ("file", "video"),
    "LoadAudio": ("audio", "audio"),
}
TYPES = frozenset(
    {"integer", "number", "string", "boolean", "seed", "image", "video", "audio", "loras"}
)
FIELDS = frozenset(
    {"name", "node", "input", "type", "description", "default", "minimum", "maximum"}
    | {"step", "choices", "optional", "also", "prefer"}
)
TOP_LEVEL = frozenset(
    {"name", "version", "description", "graph", "parameters", "presets", "requires", "outputs"}
    | {"source_format"}
)


@dataclass(frozen=True)
class Target:
    node: str
    input: str


@dataclass(frozen=True)
class ParamDecl:
    name: str
    targets: tuple[Target, ...]  # empty for loras; the loader is ``loader``
    type: str | None = None
    description: str | None = None
    default: Any = None
    has_default: bool = False
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    loader: str | None = None
    prefer: tuple[str, ...] = ()  # model files to default to, in order (workflows/models.py)


@dataclass
class Template:
    name: str
    version: int
    description: str
    graph: JsonDict
    params: list[ParamDecl]
    presets: dict[str, JsonDict] = field(default_factory=dict)
    requires_nodes: list[str] = field(default_factory=list)
    requires_models: list[str] = field(default_factory=list)
    outputs: list[str] | None = None
    source: str = "api"  # builtin, folder or api
    source_format: str = "api"  # the graph as given: api or ui

    def param(self, name: str) -> ParamDecl | None:
        return next((p for p in self.params if p.name == name), None)

    def stored(self) -> JsonDict:
        """The manifest as kept in the database: the graph inline, in API format."""
        return {
            "description": self.description,
            "graph": self.graph,
            "parameters": [_declared(p) for p in self.params],
            "presets": self.presets,
            "requires": {"nodes": self.requires_nodes, "models": self.requires_models},
            "outputs": self.outputs,
            "source_format": self.source_format,
        }


def _declared(param: ParamDecl) -> JsonDict:
    out: JsonDict = {"name": param.name}
    if param.loader is not None:
        out["node"] = param.loader
    elif param.targets:
        out["node"], out["input"] = param.targets[0].node, param.targets[0].input
        if len(param.targets) > 1:
            out["also"] = [{"node": t.node, "input": t.input} for t in param.targets[1:]]
    for key in ("type", "description", "minimum", "maximum", "step"):
        if getattr(param, key) is not None:
            out[key] = getattr(param, key)
    if param.has_default:
        out["default"] = param.default
    if param.choices is not None:
        out["choices"] = list(param.choices)
    if param.optional:
        out["optional"] = True
    if param.prefer:
        out["prefer"] = list(param.prefer)
    return out


class _Loader(yaml.SafeLoader):
    """Safe YAML without aliases: a few bytes of nested aliases can stand for gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not accepted in manifests")
        return super().compose_node(parent, index)


def parse_text(text: str, *, source: str) -> JsonDict:
    """A manifest file's content (YAML is a superset of JSON)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader without aliases
    except yaml.YAMLError as exc:
        raise WorkflowInvalid([{"field": source, "reason": f"not valid YAML/JSON: {exc}"}]) from exc
    except RecursionError as exc:
        raise WorkflowInvalid([{"field": source, "reason": "nested too deeply"}]) from exc
    documents.check_document(data)
    if not isinstance(data, dict):
        raise WorkflowInvalid([{"field": source, "reason": "a manifest must be a mapping"}])
    return data


def load(
    data: JsonDict,
    *,
    name: str,
    schemas: Sequence[JsonDict],
    version: int = 1,
    source: str = "api",
    base_dir: Path | None = None,
) -> Template:
    """A Template from a manifest; raises WorkflowInvalid naming each problem."""
    problems: list[JsonDict] = []
    if not NAME.match(name):
        problems.append({"field": "name", "reason": f"{name!r} is not a valid workflow name"})
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        problems.append({"field": unknown[0], "reason": "unknown manifest key"})
    graph, source_format = _graph(data.get("graph"), base_dir, schemas)
    params = _params(data.get("parameters"), graph, problems)
    presets = data.get("presets") or {}
    if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
        problems.append({"field": "presets", "reason": "presets map names to parameter sets"})
        presets = {}
    known = {p.name for p in params}
    for preset, values in presets.items():
        for key in values:
            if key not in known:
                problems.append({"field": f"presets.{preset}.{key}", "reason": "no such parameter"})
    requires = data.get("requires") or {}
    outputs = data.get("outputs")
    if problems:
        raise WorkflowInvalid(problems)
    return Template(
        name=name,
        version=int(data.get("version") or version),
        description=str(data.get("description") or ""),
        graph=graph,
        params=params,
        presets={str(k): dict(v) for k, v in presets.items()},
        requires_nodes=[str(x) for x in requires.get("nodes") or []],
        requires_models=[str(x) for x in requires.get("models") or []],
        outputs=[str(x) for x in outputs] if isinstance(outputs, list) else None,
        source=source,
        source_format=str(data.get("source_format") or source_format),
    )


def _graph(raw: Any, base_dir: Path | None, schemas: Sequence[JsonDict]) -> tuple[JsonDict, str]:
    if isinstance(raw, str):
        if base_dir is None:
            raise WorkflowInvalid([{"field": "graph", "reason": "give the graph inline"}])
        path = (base_dir / raw).resolve()
        if base_dir.resolve() not in path.parents:
            raise WorkflowInvalid([{"field": "graph", "reason": "graph file outside the folder"}])
        try:
            raw = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkflowInvalid(
                [{"field": "graph", "reason": f"cannot read {raw}: {exc}"}]
            ) from exc
    if convert.is_ui_format(raw):
        return convert.ui_to_api(raw, schemas), "ui"
    if isinstance(raw, dict) and isinstance(raw.get("prompt"), dict):
        raw = raw["prompt"]  # a saved POST /prompt body
    if not isinstance(raw, dict) or not raw:
        raise WorkflowInvalid([{"field": "graph", "reason": "a ComfyUI graph (API or UI format)"}])
    graph: JsonDict = {}
    for node_id, node in raw.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowInvalid(
                [{"field": "graph", "node_id": str(node_id), "reason": "not a node"}]
            )
        graph[str(node_id)] = {**node, "inputs": dict(node.get("inputs") or {})}
    return graph, "api"


def _entries(raw: Any, problems: list[JsonDict]) -> list[JsonDict]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        entries = []
        for name, spec in raw.items():
            if isinstance(spec, str):
                entries.append({"name": name, "ref": spec})
            elif isinstance(spec, dict):
                entries.append({"name": name, **spec})
            else:
                problems.append({"field": f"parameters.{name}", "reason": "a binding or mapping"})
        return entries
    if isinstance(raw, list) and all(isinstance(e, dict) for e in raw):
        return [dict(e) for e in raw]
    problems.append({"field": "parameters", "reason": "a list or mapping of parameters"})
    return []


def _params(raw: Any, graph: JsonDict, problems: list[JsonDict]) -> list[ParamDecl]:
    params: list[ParamDecl] = []
    for entry in _entries(raw, problems):
        name = str(entry.get("name", ""))
        where = f"parameters.{name}"
        if not PARAM_NAME.match(name) or any(p.name == name for p in params):
            problems.append({"field": where, "reason": "names must be unique identifiers"})
            continue
        ref = entry.pop("ref", None)
        extra = sorted(set(entry) - FIELDS)
        if extra:
            problems.append({"field": f"{where}.{extra[0]}", "reason": "unknown key"})
        kind = entry.get("type")
        if kind is not None and kind not in TYPES:
            problems.append({"field": f"{where}.type", "reason": f"one of {sorted(TYPES)}"})
        try:
            if kind == "loras":
                loader = _node(graph, str(entry.get("node") if ref is None else ref))
                params.append(ParamDecl(name, (), "loras", entry.get("description"), loader=loader))
                continue
            targets = [_target(graph, entry, ref)]
            targets += [_target(graph, also, None) for also in entry.get("also") or []]
        except ValueError as exc:
            problems.append({"field": where, "reason": str(exc)})
            continue
        choices = entry.get("choices")
        prefer = entry.get("prefer") or []
        if not isinstance(prefer, list) or not all(isinstance(p, str) for p in prefer):
            problems.append({"field": f"{where}.prefer", "reason": "a list of model file names"})
            prefer = []
        params.append(
            ParamDecl(
                name=name,
                targets=tuple(targets),
                type=kind,
                description=entry.get("description"),
                default=entry.get("default"),
                has_default="default" in entry,
                minimum=entry.get("minimum"),
                maximum=entry.get("maximum"),
                step=entry.get("step"),
                choices=tuple(choices) if isinstance(choices, list) else None,
                optional=bool(entry.get("optional", False)),
                prefer=tuple(prefer),
            )
        )
    return params


def _node(graph: JsonDict, ref: str) -> str:
    if ref in graph:
        return ref
    titled = [i for i, n in graph.items() if (n.get("_meta") or {}).get("title") == ref]
    if len(titled) == 1:
        return titled[0]
    if titled:
        raise ValueError(f"title {ref!r} is ambiguous (nodes {', '.join(titled)})")
    raise ValueError(f"no node with id or title {ref!r}")


def _target(graph: JsonDict, entry: Any, ref: str | None) -> Target:
    if not isinstance(entry, dict):
        raise ValueError("a binding is {node, input}")
    node_ref, input_name = entry.get("node"), entry.get("input")
    if ref is not None:
        node_ref = ref
        if ref not in graph and not any(
            (n.get("_meta") or {}).get("title") == ref for n in graph.values()
        ):
            node_ref, _, input_name = ref.rpartition(".")
    if node_ref is None:
        raise ValueError("a binding needs a node (id or title)")
    node_id = _node(graph, str(node_ref))
    node = graph[node_id]
    literals = [k for k, v in node["inputs"].items() if not _is_link(v)]
    if input_name is None:
        media = MEDIA_INPUTS.get(node["class_type"])
        if media is not None:
            input_name = media[0]
        elif len(literals) == 1:
            input_name = literals[0]
        else:
            raise ValueError(f"node {node_id} has several inputs: name one of {literals}")
    input_name = str(input_name)
    if input_name not in literals and node["class_type"] not in MEDIA_INPUTS:
        if input_name in node["inputs"]:
            raise ValueError(f"node {node_id} input {input_name!r} is a link, not a value")
        raise ValueError(f"node {node_id} has no input {input_name!r}")
    return Target(node_id, input_name)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
