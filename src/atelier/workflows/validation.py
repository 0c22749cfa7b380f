"""Check an API-format graph the way ComfyUI's validate_prompt would, before any GPU time.

The schemas are the backends' own ``/object_info``. A node class is known if any backend
has it; its inputs are checked against the first backend that has it. Every problem is
reported with the node id, the input name and a reason a person can act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from atelier.comfyui.capabilities import model_folder
from atelier.errors import GraphInvalid

Problem = dict[str, Any]


def check_structure(graph: Any, *, max_nodes: int) -> dict[str, dict[str, Any]]:
    """Shape checks that need no schema. Returns the graph; raises GraphInvalid."""
    if not isinstance(graph, dict) or not graph:
        raise GraphInvalid(
            [
                {
                    "node_id": None,
                    "input": None,
                    "reason": "graph must be a non-empty object of nodes",
                }
            ]
        )
    if len(graph) > max_nodes:
        raise GraphInvalid(
            [
                {
                    "node_id": None,
                    "input": None,
                    "reason": f"graph has {len(graph)} nodes; the limit is {max_nodes}",
                }
            ]
        )
    problems: list[Problem] = []
    normalized: dict[str, dict[str, Any]] = {}
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            problems.append(
                _problem(node_id, None, "node must be an object with a string class_type")
            )
            continue
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            problems.append(_problem(node_id, "inputs", "inputs must be an object"))
            continue
        fixed: dict[str, Any] = {}
        for name, value in inputs.items():
            if _is_link(value):
                # ComfyUI looks links up by string id; [1, 0] would fail there.
                value = [str(value[0]), value[1]]
                if value[0] not in graph:
                    problems.append(
                        _problem(
                            node_id, name, f"links to node {value[0]!r}, which is not in the graph"
                        )
                    )
            fixed[name] = value
        normalized[str(node_id)] = {**node, "inputs": fixed}
    problems.extend(_path_problems(normalized))
    if not problems:
        problems.extend(_cycle_problems(normalized))
    if problems:
        raise GraphInvalid(problems)
    return normalized


PATH_INPUTS = frozenset({"filename_prefix"})


def _path_problems(graph: dict[str, dict[str, Any]]) -> list[Problem]:
    """Output names must stay inside ComfyUI's output folder (ComfyUI refuses them only
    when the node runs, after the GPU time before it was spent)."""
    problems: list[Problem] = []
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            if name in PATH_INPUTS and isinstance(value, str) and _escapes_folder(value):
                problems.append(
                    _problem(
                        node_id,
                        name,
                        "must be a relative path inside the output folder "
                        "(no '..', no absolute path, no NUL)",
                        node["class_type"],
                    )
                )
    return problems


def _escapes_folder(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    return (
        "\x00" in path
        or path.startswith(("/", "\\"))
        or (len(path) > 1 and path[0].isalpha() and path[1] == ":")  # a Windows drive
        or ".." in parts
    )


def _cycle_problems(graph: dict[str, dict[str, Any]]) -> list[Problem]:
    """ComfyUI executes a graph in dependency order; a cycle (a node linked to itself
    included) has none. Iterative, so a long chain cannot exhaust the stack."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if start in state:
            continue
        path: list[tuple[str, list[tuple[str, str]]]] = [(start, _links_of(graph[start]))]
        state[start] = 1
        while path:
            node_id, pending = path[-1]
            if not pending:
                state[node_id] = 2
                path.pop()
                continue
            name, source = pending.pop()
            if state.get(source) == 1:
                cycle = [n for n, _ in path[[n for n, _ in path].index(source) :]]
                shown = " -> ".join([*cycle, source])
                reason = f"links into a cycle ({shown}); a graph must have no cycles"
                return [_problem(node_id, name, reason, graph[node_id]["class_type"])]
            if source not in state:
                state[source] = 1
                path.append((source, _links_of(graph[source])))
    return []


def _links_of(node: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, str(v[0])) for name, v in node["inputs"].items() if _is_link(v)]


def check_against_schemas(
    graph: dict[str, Any], schemas: Sequence[dict[str, Any]], *, models_known: bool = True
) -> None:
    """Check classes, required inputs, types, ranges, combos and link types.

    A combo value is accepted if any backend that has the class offers it (each backend
    lists its own model files; the scheduler then picks one that has them). With
    ``models_known=False`` (schemas that say nothing about real model folders, such as
    the bundled snapshot) model file names are not checked at all.
    """
    if not schemas:
        return  # no backend has answered yet: ComfyUI will judge, the job reports it
    problems: list[Problem] = []
    has_output = False
    for node_id, node in graph.items():
        class_type = node["class_type"]
        info = next((s[class_type] for s in schemas if class_type in s), None)
        if info is None:
            problems.append(
                _problem(
                    node_id,
                    None,
                    f"unknown node class {class_type!r} (no backend has it)",
                    class_type,
                )
            )
            continue
        has_output = has_output or bool(info.get("output_node"))
        problems.extend(_check_inputs(graph, node_id, node, info, schemas, models_known))
    if not problems and not has_output:
        problems.append(
            _problem(None, None, "the graph has no output node (SaveImage, PreviewImage, ...)")
        )
    if problems:
        raise GraphInvalid(problems)


def _check_inputs(
    graph: dict[str, Any],
    node_id: str,
    node: dict[str, Any],
    info: dict[str, Any],
    schemas: Sequence[dict[str, Any]],
    models_known: bool = True,
) -> list[Problem]:
    problems: list[Problem] = []
    declared = info.get("input") or {}
    inputs = node.get("inputs") or {}
    class_type = node["class_type"]
    for section in ("required", "optional"):
        for name, spec in (declared.get(section) or {}).items():
            if name not in inputs:
                if section == "required":
                    problems.append(
                        _problem(node_id, name, "required input is missing", class_type)
                    )
                continue
            value = inputs[name]
            kind, options = _spec(spec)
            if _is_link(value):
                reason = _check_link(graph, value, kind, schemas)
            elif isinstance(kind, list) and model_folder(class_type, name, value) is not None:
                reason = (
                    None if not models_known else _check_model(value, class_type, name, schemas)
                )
            else:
                reason = _check_value(value, kind, options)
            if reason:
                problems.append(_problem(node_id, name, reason, class_type))
    return problems


def _check_model(
    value: Any, class_type: str, name: str, schemas: Sequence[dict[str, Any]]
) -> str | None:
    """A model file is fine if any backend that has the class lists it."""
    offered: list[Any] = []
    for schema in schemas:
        declared = (schema.get(class_type) or {}).get("input") or {}
        for section in ("required", "optional"):
            raw = (declared.get(section) or {}).get(name)
            kind = _spec(raw)[0] if raw is not None else None
            if isinstance(kind, list):
                offered.extend(k for k in kind if k not in offered)
    if value in offered:
        return None
    shown = ", ".join(map(str, offered[:10])) + (" ..." if len(offered) > 10 else "")
    return f"{value!r} is not one of the allowed values ({shown}) on any backend"


def _spec(spec: Any) -> tuple[Any, dict[str, Any]]:
    if not isinstance(spec, list) or not spec:
        return "*", {}
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if kind == "COMBO":  # V3 nodes
        kind = list(options.get("options", []))
    return kind, options


def _check_link(
    graph: dict[str, Any], link: list[Any], kind: Any, schemas: Sequence[dict[str, Any]]
) -> str | None:
    source = graph[str(link[0])]
    index = link[1]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        return f"link output index must be a non-negative integer, not {index!r}"
    info = next((s[source["class_type"]] for s in schemas if source["class_type"] in s), None)
    if info is None:
        return None  # reported on the source node
    outputs = info.get("output") or []
    if index >= len(outputs):
        return f"node {link[0]} ({source['class_type']}) has no output {index}"
    produced = outputs[index]
    if isinstance(kind, str) and isinstance(produced, str) and "*" not in (kind, produced):
        accepted = set(kind.split(","))
        if produced not in accepted and not (set(produced.split(",")) & accepted):
            return f"expects {kind}, but node {link[0]} output {index} is {produced}"
    return None


def _check_value(value: Any, kind: Any, options: dict[str, Any]) -> str | None:
    if isinstance(kind, list):
        if (
            options.get("image_upload")
            or options.get("video_upload")
            or options.get("audio_upload")
        ):
            return None  # file names: ComfyUI's own VALIDATE_INPUTS judges these
        if value not in kind:
            shown = ", ".join(map(str, kind[:10])) + (" ..." if len(kind) > 10 else "")
            return f"{value!r} is not one of the allowed values ({shown})"
        return None
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expects an integer, got {type(value).__name__}"
        if isinstance(value, float) and not value.is_integer():
            return f"expects an integer, got {value}"
    elif kind == "FLOAT":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return f"expects a number, got {value!r}"
    elif kind == "STRING":
        if not isinstance(value, str):
            return f"expects a string, got {type(value).__name__}"
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            return f"expects true or false, got {value!r}"
    else:
        return None
    if kind in ("INT", "FLOAT"):
        low, high = options.get("min"), options.get("max")
        if low is not None and value < low:
            return f"{value} is below the minimum {low}"
        if high is not None and value > high:
            return f"{value} is above the maximum {high}"
    return None


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
    )


def _problem(node_id: Any, name: str | None, reason: str, class_type: str | None = None) -> Problem:
    problem: Problem = {"node_id": node_id, "input": name, "reason": reason}
    if class_type:
        problem["node_type"] = class_type
    return problem
