"""Edits of API-format graphs: pruning optional inputs and inserting a LoRA chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atelier.workflows.schemas import merged_spec, node_info, output_types

JsonDict = dict[str, Any]


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def _output_type(graph: JsonDict, schemas: Sequence[JsonDict], link: list[Any]) -> str | None:
    source = graph.get(link[0])
    info = node_info(schemas, source["class_type"]) if source else None
    outputs = output_types(info) if info else []
    return outputs[link[1]] if link[1] < len(outputs) else None


def prune(graph: JsonDict, node_ids: Sequence[str], schemas: Sequence[JsonDict]) -> JsonDict:
    """Remove nodes and whatever only they fed. A consumer that loses an input:

    - drops it if the input is optional (``ImageStitch.image2``);
    - is bypassed if it has another linked input of the same type and an output of that
      type (``ImageBatch(image1, image2)`` without image2 becomes image1), like ComfyUI's
      own bypass;
    - is removed as well otherwise, and the same rules apply to its consumers.
    """
    removed = set(node_ids)
    pending = list(node_ids)
    while pending:
        gone = pending.pop()
        for node_id, node in graph.items():
            if node_id in removed:
                continue
            for name, value in list(node["inputs"].items()):
                if not is_link(value) or value[0] != gone:
                    continue
                spec = merged_spec(schemas, node["class_type"], name)
                if spec is not None and spec.section == "optional":
                    del node["inputs"][name]
                    continue
                if spec is not None and _bypass(graph, node_id, name, spec.kind, schemas, removed):
                    removed.add(node_id)
                    pending.append(node_id)
                    break
                removed.add(node_id)
                pending.append(node_id)
                break
    return {node_id: node for node_id, node in graph.items() if node_id not in removed}


def _bypass(
    graph: JsonDict,
    node_id: str,
    lost: str,
    kind: str,
    schemas: Sequence[JsonDict],
    removed: set[str],
) -> bool:
    node = graph[node_id]
    alternative = next(
        (
            value
            for name, value in node["inputs"].items()
            if name != lost
            and is_link(value)
            and value[0] not in removed
            and (spec := merged_spec(schemas, node["class_type"], name)) is not None
            and spec.kind == kind
        ),
        None,
    )
    info = node_info(schemas, node["class_type"])
    outputs = output_types(info) if info else []
    if alternative is None or kind not in outputs:
        return False
    index = outputs.index(kind)
    for other in graph.values():
        for name, value in other["inputs"].items():
            if is_link(value) and value[0] == node_id and value[1] == index:
                other["inputs"][name] = list(alternative)
    return True


def _next_id(graph: JsonDict) -> int:
    numbers = [int(i) for i in graph if i.isdigit()]
    return max(numbers, default=0) + 1


def insert_loras(
    graph: JsonDict,
    loader: str,
    loras: Sequence[JsonDict],
    schemas: Sequence[JsonDict],
) -> list[str]:
    """Put a chain of LoraLoader nodes between ``loader`` and every consumer of its MODEL
    and CLIP outputs (LoraLoaderModelOnly if it has no CLIP output). Returns the new ids."""
    if not loras:
        return []
    info = node_info(schemas, graph[loader]["class_type"])
    outputs = output_types(info) if info else []
    if "MODEL" not in outputs:
        raise ValueError(f"node {loader} has no MODEL output")
    model_out = [loader, outputs.index("MODEL")]
    clip_out = [loader, outputs.index("CLIP")] if "CLIP" in outputs else None
    consumers = [
        (node, name, value)
        for node in graph.values()
        for name, value in node["inputs"].items()
        if is_link(value) and value in (model_out, clip_out)
    ]
    model, clip = model_out, clip_out
    added: list[str] = []
    number = _next_id(graph)
    for lora in loras:
        node_id = str(number)
        number += 1
        strength = lora["strength"]
        if clip is not None:
            graph[node_id] = {
                "class_type": "LoraLoader",
                "inputs": {
                    "model": model,
                    "clip": clip,
                    "lora_name": lora["name"],
                    "strength_model": strength,
                    "strength_clip": lora.get("strength_clip", strength),
                },
                "_meta": {"title": f"LoRA {lora['name']}"},
            }
            model, clip = [node_id, 0], [node_id, 1]
        else:
            graph[node_id] = {
                "class_type": "LoraLoaderModelOnly",
                "inputs": {"model": model, "lora_name": lora["name"], "strength_model": strength},
                "_meta": {"title": f"LoRA {lora['name']}"},
            }
            model = [node_id, 0]
        added.append(node_id)
    for node, name, value in consumers:
        node["inputs"][name] = list(model if value == model_out else clip or value)
    return added
