"""A template plus checked parameter values gives a graph to run.

Scalar values are written into the inputs they are bound to; a seed of -1 (or none) is
drawn at random; media parameters leave a ``"@param:<name>"`` placeholder that the
caller replaces with the job's input artifact once the graph has passed its checks;
optional media that were not given are pruned with what only they fed; LoRAs become a
chain of loader nodes. ``check_template`` renders a template both ways (every optional
input given, none given) to catch a broken template when it is registered.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atelier.errors import GraphInvalid, ValidationFailed, WorkflowInvalid
from atelier.workflows import graphops, validation
from atelier.workflows.manifest import Template
from atelier.workflows.params import MEDIA_KINDS, SEED_MAX, ParamSpec, validate

JsonDict = dict[str, Any]

PARAM_MARKER = "@param:"
JS_SAFE = 2**53 - 1  # seeds stay exact in JSON clients


@dataclass
class Rendered:
    graph: JsonDict
    params: JsonDict  # every parameter's effective value (the seed drawn, media names)
    media: dict[str, JsonDict]  # media parameter -> its value form, still to be resolved


def render(
    template: Template, specs: Sequence[ParamSpec], values: JsonDict, schemas: Sequence[JsonDict]
) -> Rendered:
    graph = copy.deepcopy(template.graph)
    resolved: JsonDict = {}
    media: dict[str, JsonDict] = {}
    pruned: list[str] = []
    loras: list[tuple[str, list[JsonDict]]] = []
    for spec in specs:
        decl = spec.decl
        if spec.kind == "loras":
            chosen = values.get(spec.name) or []
            resolved[spec.name] = chosen
            if chosen and decl.loader is not None:
                loras.append((decl.loader, chosen))
            continue
        if spec.kind in MEDIA_KINDS:
            if spec.name in values:
                media[spec.name] = values[spec.name]
                for target in decl.targets:
                    graph[target.node]["inputs"][target.input] = PARAM_MARKER + spec.name
            elif spec.required:
                raise ValidationFailed(
                    f"{spec.name}: this {spec.kind} is required",
                    errors=[{"field": spec.name, "reason": f"required ({spec.kind})"}],
                )
            else:
                resolved[spec.name] = None
                pruned.extend(target.node for target in decl.targets)
            continue
        value = values.get(spec.name, spec.default)
        if spec.kind == "seed" and (value is None or value == -1):
            top = int(spec.maximum) if spec.maximum is not None else SEED_MAX
            value = secrets.randbelow(min(top, JS_SAFE) + 1)
        resolved[spec.name] = value
        for target in decl.targets:
            graph[target.node]["inputs"][target.input] = value
    if pruned:
        graph = graphops.prune(graph, pruned, schemas)
    for loader, chosen in loras:
        if loader in graph:
            graphops.insert_loras(graph, loader, chosen, schemas)
    return Rendered(graph, resolved, media)


def fill_media(graph: JsonDict, spec: ParamSpec, value: str) -> None:
    """Put a media parameter's final value (``@artifact:<id>``) where it is bound."""
    for target in spec.decl.targets:
        if graph[target.node]["inputs"].get(target.input) == PARAM_MARKER + spec.name:
            graph[target.node]["inputs"][target.input] = value


def check_template(
    template: Template, specs: Sequence[ParamSpec], schemas: Sequence[JsonDict]
) -> list[JsonDict]:
    """Problems that make a template unusable raise WorkflowInvalid; what only the
    backends can fix (node classes no backend has) is returned as warnings."""
    problems: list[JsonDict] = []
    warnings: dict[Any, JsonDict] = {}
    for preset, preset_values in template.presets.items():
        try:
            validate(preset_values, specs, prefix=f"presets.{preset}.")
        except ValidationFailed as exc:
            problems.extend(exc.extra.get("errors", []))
    placeholder = {"artifact": "00000000-0000-0000-0000-000000000000"}
    full = {s.name: placeholder for s in specs if s.kind in MEDIA_KINDS}
    minimal = {s.name: placeholder for s in specs if s.required}
    for label, values in (
        ("with every optional input", full),
        ("without optional inputs", minimal),
    ):
        try:
            graph = render(template, specs, values, schemas).graph
            graph = validation.check_structure(graph, max_nodes=100_000)
            validation.check_against_schemas(graph, schemas, models_known=False)
        except GraphInvalid as exc:
            for problem in exc.errors:
                if str(problem.get("reason", "")).startswith("unknown node class"):
                    warnings.setdefault(problem.get("node_id"), problem)
                    continue
                entry = {**problem, "reason": f"{problem['reason']} ({label})"}
                if entry not in problems:
                    problems.append(entry)
        except ValueError as exc:
            problems.append({"field": "parameters", "reason": f"{exc} ({label})"})
    if problems:
        raise WorkflowInvalid(problems)
    return list(warnings.values())
