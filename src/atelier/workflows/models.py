"""Model defaults that work on the backends at hand.

A template names the model files it was built with (``v1-5-pruned-emaonly.safetensors``),
but a ComfyUI box holds whatever its owner downloaded. When the caller does not choose a
model, each model input of the template gets, in order:

1. the template's own file, or the first of the parameter's ``prefer`` list, that some
   backend has;
2. else an installed file of the same family (SD 1.5, SDXL, SVD, ... told from the file
   name; an inpainting model only stands in for an inpainting model). A checkpoint whose
   name says nothing about its family is taken as SD 1.5, by far the most common kind of
   community checkpoint, so "prompt in, image out" works on a stock box;
3. else the job is refused (422 capability-missing) naming the parameter and listing
   the files that are installed.

A model the caller chose is never replaced: it is checked against what exists instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from atelier.comfyui.capabilities import backend_models, model_folder
from atelier.errors import CapabilityMissing
from atelier.workflows.manifest import Template

JsonDict = dict[str, Any]

# The first family whose pattern matches the file name (lower case) wins.
FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("svd", r"svd|stable[-_ ]?video"),
        ("wan", r"wan2|wan_2|\bwan[-_]"),
        ("flux", r"flux"),
        ("qwen-image", r"qwen"),
        ("sd3", r"sd3|sd_3|sd-3"),
        ("sdxl", r"xl|pony|illustrious|noob"),
        ("sd2", r"v2-|sd2|sd_2|768-v|512-base"),
        ("sd15", r"v1-5|v1\.5|sd15|sd_?1[-_.]?5|1-5|1\.5"),
    )
)
UNNAMED_MEANS = "sd15"  # checkpoints whose names tell nothing: the common case
_INPAINT = re.compile(r"inpaint")


def family(filename: str) -> str | None:
    """``sd15``, ``sdxl-inpaint``, ... or None when the name does not tell."""
    name = filename.lower()
    base = next((family for family, pattern in FAMILIES if pattern.search(name)), None)
    if base is None:
        return "inpaint" if _INPAINT.search(name) else None
    return f"{base}-inpaint" if _INPAINT.search(name) else base


def installed(object_infos: Iterable[JsonDict]) -> dict[str, list[str]]:
    """Model folder -> files that at least one backend has (sorted)."""
    by_folder: dict[str, set[str]] = {}
    for object_info in object_infos:
        for entry in backend_models(object_info) or ():
            folder, _, filename = entry.partition("/")
            by_folder.setdefault(folder, set()).add(filename)
    return {folder: sorted(files) for folder, files in by_folder.items()}


def choose(
    folder: str, wanted: str, prefer: Sequence[str], available: dict[str, list[str]]
) -> str | None:
    """The file to use for a model input whose template default is ``wanted``."""
    files = available.get(folder, [])
    if wanted in files:
        return wanted
    for candidate in prefer:
        if candidate in files:
            return candidate
    wanted_family = family(wanted)
    if wanted_family is None:
        return None
    same = [f for f in files if family(f) == wanted_family]
    if same:
        return same[0]
    if wanted_family == UNNAMED_MEANS and folder == "checkpoints":
        unnamed = [f for f in files if family(f) is None]
        if unnamed:
            return unnamed[0]
    return None


def apply_defaults(
    template: Template,
    graph: JsonDict,
    resolved: JsonDict,
    given: set[str],
    object_infos: Sequence[JsonDict],
) -> tuple[list[JsonDict], dict[str, list[str]]]:
    """Point every model input the caller did not choose at a file a backend has.

    ``graph`` is the rendered graph and ``resolved`` the effective parameters, both
    updated in place. Nothing changes while no backend's /object_info is known (the job
    waits for a backend like any other). Returns, for inputs no installed file can fill,
    ``[{field, reason}]`` and the files installed per folder: the capability check that
    follows refuses the job, and ``explain`` adds these to its answer."""
    if not object_infos:
        return [], {}
    available = installed(object_infos)
    bound = {
        (target.node, target.input): decl for decl in template.params for target in decl.targets
    }
    problems: list[JsonDict] = []
    listed: dict[str, list[str]] = {}
    for node_id, node in template.graph.items():
        class_type = str(node.get("class_type"))
        for input_name, value in (node.get("inputs") or {}).items():
            folder = model_folder(class_type, input_name, value)
            if folder is None or node_id not in graph:
                continue
            decl = bound.get((node_id, input_name))
            if decl is not None and decl.name in given:
                continue  # the caller's choice, checked elsewhere
            current = graph[node_id]["inputs"].get(input_name)
            if not isinstance(current, str):
                continue
            pick = choose(folder, current, decl.prefer if decl else (), available)
            if pick is None:
                files = available.get(folder, [])
                listed[folder] = files
                field = decl.name if decl else f"graph.{node_id}.{input_name}"
                kind = family(current)
                reason = (
                    f"no backend has {current}"
                    + (f" or another {kind} model" if kind else "")
                    + f"; installed in {folder}: "
                    + (", ".join(files) if files else "nothing")
                )
                if not any(p["field"] == field for p in problems):
                    problems.append({"field": field, "reason": reason})
                continue
            if pick != current:
                for target in decl.targets if decl else ():
                    if target.node in graph:
                        graph[target.node]["inputs"][target.input] = pick
                graph[node_id]["inputs"][input_name] = pick
                if decl is not None:
                    resolved[decl.name] = pick
    return problems, listed


def explain(exc: CapabilityMissing, problems: list[JsonDict], listed: dict[str, list[str]]) -> None:
    """Add to a capability-missing answer which parameter to set and what is installed."""
    if not problems:
        return
    exc.extra["errors"] = problems
    exc.extra["installed"] = listed
    exc.detail = f"{exc.detail}; {problems[0]['field']}: {problems[0]['reason']}"
