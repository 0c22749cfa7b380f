"""Turn ComfyUI's per-node messages into one honest number: progress over the whole graph.

Only the nodes ComfyUI will execute count: ancestors of output nodes, minus the ones it
reports as cached. Each counts equally; a node that reports steps (a sampler) counts in
proportion. 1.0 is reserved for a job whose outputs are stored.
"""

from __future__ import annotations

from typing import Any

from atelier.comfyui import messages as m


def needed_nodes(graph: dict[str, Any], object_info: dict[str, Any] | None) -> set[str]:
    """The nodes ComfyUI runs for this graph: output nodes and everything they depend on."""
    if object_info is None:
        return set(graph)
    outputs = [
        node_id
        for node_id, node in graph.items()
        if object_info.get(node.get("class_type", ""), {}).get("output_node")
    ]
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in graph:
            continue
        seen.add(node_id)
        for value in (graph[node_id].get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                stack.append(value[0])
    return seen or set(graph)


CHECKPOINT_LOADERS = ("CheckpointLoaderSimple", "CheckpointLoader", "ImageOnlyCheckpointLoader")


def checkpoint_of(graph: dict[str, Any]) -> str | None:
    """The checkpoint a graph loads first (what model affinity keys on), if any."""
    for node_id in sorted(graph, key=lambda n: (len(n), n)):
        node = graph[node_id]
        if node.get("class_type") in CHECKPOINT_LOADERS:
            name = (node.get("inputs") or {}).get("ckpt_name")
            if isinstance(name, str):
                return name
    return None


class ProgressTracker:
    def __init__(self, graph: dict[str, Any], object_info: dict[str, Any] | None) -> None:
        self.graph = graph
        self.to_run = needed_nodes(graph, object_info)
        self.finished: set[str] = set()
        self.current: str | None = None
        self.step: int | None = None
        self.max: int | None = None

    def feed(self, message: m.Message) -> bool:
        """Apply one message (already known to be ours); True if progress changed."""
        if isinstance(message, m.ExecutionCached):
            self.to_run -= set(message.data.nodes)
            return True
        if isinstance(message, m.Executing) and message.data.node is not None:
            if self.current is not None and self.current != message.data.node:
                self.finished.add(self.current)
            self.current, self.step, self.max = message.data.node, None, None
            return True
        if isinstance(message, m.Progress):
            self.current = message.data.node or self.current
            self.step, self.max = int(message.data.value), int(message.data.max)
            return True
        if isinstance(message, m.ProgressState):
            nodes = (message.data.model_extra or {}).get("nodes") or {}
            before = len(self.finished)
            for node_id, state in nodes.items():
                if isinstance(state, dict) and state.get("state") == "finished":
                    self.finished.add(str(node_id))
            return len(self.finished) != before
        return False

    @property
    def fraction(self) -> float:
        total = len(self.to_run)
        if total == 0:
            return 0.99
        done = len(self.finished & self.to_run)
        partial = 0.0
        if self.current in self.to_run and self.current not in self.finished and self.max:
            partial = min(1.0, (self.step or 0) / self.max)
        return round(min(0.99, (done + partial) / total), 4)

    def snapshot(self) -> dict[str, Any]:
        node_type = None
        if self.current is not None:
            node_type = (self.graph.get(self.current) or {}).get("class_type")
        return {
            "progress": self.fraction,
            "node": self.current,
            "node_type": node_type,
            "step": self.step,
            "max": self.max,
        }
