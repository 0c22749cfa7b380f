"""Turn ComfyUI's per-node messages into one honest number: progress over the whole graph.

Only the nodes ComfyUI will execute count: ancestors of output nodes, minus the ones it
reports as cached. Each counts by its expected time (see ProgressTracker), and a sampler
moves the bar step by step. 1.0 is reserved for a job whose outputs are stored. Besides
the number: a stage name, the last sampler step and its max_steps, and an ETA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


# Until a backend has measured them: a sampler step and any other node, in seconds.
# What matters is the ratio: sampling is most of a diffusion graph's time.
DEFAULT_STEP_SECONDS = 0.5
DEFAULT_NODE_SECONDS = 0.2
DEFAULT_STEPS = 20
MIN_ELAPSED_FOR_ETA = 0.5  # seconds of execution before extrapolating says anything
LEARNING_RATE = 0.5  # weight of the newest measurement in a backend's running average
STEP_KEY = "{}/step"  # a sampler's time is kept per step: steps vary from job to job


def stage_of(class_type: str | None, *, sampling: bool = False) -> str:
    """A short name a person understands for what the node is doing."""
    name = class_type or ""
    if sampling or "Sampler" in name:
        return "sampling"
    if name.startswith(("LoadImage", "LoadVideo", "LoadAudio")):
        return "loading inputs"
    if "Loader" in name or name.startswith("Load"):
        return "loading models"
    if "TextEncode" in name or "Conditioning" in name:
        return "encoding prompt"
    if "VAEDecode" in name:
        return "decoding"
    if "VAEEncode" in name:
        return "encoding image"
    if name.startswith(("Save", "Preview", "Create")) or "Combine" in name:
        return "saving"
    return "running"


class ProgressTracker:
    """Progress over the graph, weighted by each node's share of the time.

    A node's weight is its expected seconds: what this backend measured for its class
    (a sampler: per step, times its steps), else a default in which a sampler step
    weighs more than a whole ordinary node, so the bar moves with sampling instead of
    sitting still through it. ``timings()`` hands the measurements back to the backend.
    """

    def __init__(
        self,
        graph: dict[str, Any],
        object_info: dict[str, Any] | None,
        learned: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = graph
        self.to_run = needed_nodes(graph, object_info)
        self.learned = learned if learned is not None else {}
        self.clock = clock
        self.finished: set[str] = set()
        self.current: str | None = None
        self.step: int | None = None
        self.max: int | None = None
        self.stepping: set[str] = set()  # nodes that reported sampler steps
        self.started_at: float | None = None
        self._node_started: float | None = None
        self._measured: dict[str, float] = {}
        self._steps_seen: dict[str, int] = {}

    # -- messages --------------------------------------------------------------------

    def feed(self, message: m.Message) -> bool:
        """Apply one message (already known to be ours); True if progress changed."""
        if isinstance(message, m.ExecutionCached):
            self.to_run -= set(message.data.nodes)
            return True
        if isinstance(message, m.Executing) and message.data.node is not None:
            if self.current is not None and self.current != message.data.node:
                self._node_done(self.current)
            if self.current != message.data.node:
                self.current = message.data.node
                self._node_started = self.clock()
                if self.started_at is None:
                    self.started_at = self._node_started
            return True
        if isinstance(message, m.Progress):
            node = message.data.node or self.current
            if node is not None and node != self.current:
                self.current, self._node_started = node, self.clock()
            if node is not None:
                self.stepping.add(node)
            # step and max stay after the sampler ends: a finished job shows its last.
            self.step, self.max = int(message.data.value), int(message.data.max)
            if node is not None:
                self._steps_seen[node] = self.max
            return True
        if isinstance(message, m.ProgressState):
            nodes = (message.data.model_extra or {}).get("nodes") or {}
            before = len(self.finished)
            for node_id, state in nodes.items():
                if isinstance(state, dict) and state.get("state") == "finished":
                    self.finished.add(str(node_id))
            return len(self.finished) != before
        return False

    def _node_done(self, node_id: str) -> None:
        self.finished.add(node_id)
        if self._node_started is None or node_id in self._measured:
            return
        self._measured[node_id] = max(0.0, self.clock() - self._node_started)

    def end(self) -> None:
        """The prompt finished: the node that ran last is done too."""
        if self.current is not None:
            self._node_done(self.current)

    # -- weights, fraction, ETA -------------------------------------------------------

    def _class(self, node_id: str) -> str:
        return str((self.graph.get(node_id) or {}).get("class_type", ""))

    def _steps(self, node_id: str) -> int | None:
        if node_id in self._steps_seen:
            return self._steps_seen[node_id]
        steps = (self.graph.get(node_id) or {}).get("inputs", {}).get("steps")
        if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
            return int(steps)
        return DEFAULT_STEPS if stage_of(self._class(node_id)) == "sampling" else None

    def _cost(self, node_id: str) -> tuple[float, bool]:
        """(expected seconds, measured on this backend before)."""
        class_type = self._class(node_id)
        steps = self._steps(node_id)
        if steps is not None and (node_id in self.stepping or stage_of(class_type) == "sampling"):
            per_step = self.learned.get(STEP_KEY.format(class_type))
            if per_step is not None:
                return per_step * steps, True
            return DEFAULT_STEP_SECONDS * steps, False
        learned = self.learned.get(class_type)
        if learned is not None:
            return learned, True
        return DEFAULT_NODE_SECONDS, False

    def _progress(self) -> tuple[float, float, bool]:
        """(seconds done, seconds in all, every remaining cost measured)."""
        done = total = 0.0
        known = True
        for node_id in self.to_run:
            cost, measured = self._cost(node_id)
            total += cost
            if node_id in self.finished:
                done += cost
                continue
            known = known and measured
            if node_id == self.current and node_id in self.stepping and self.max:
                done += cost * min(1.0, (self.step or 0) / self.max)
        return done, total, known

    @property
    def fraction(self) -> float:
        done, total, _ = self._progress()
        if total <= 0:
            return 0.99
        return round(min(0.99, done / total), 4)

    def eta_seconds(self) -> float | None:
        """Seconds left: from this backend's measured times when it has run every
        remaining kind of node before; else extrapolated from the time spent so far,
        once there is enough of it to say anything."""
        done, total, known = self._progress()
        if known and total > 0:
            return round(max(0.0, total - done), 1)
        if self.started_at is None or total <= 0 or done / total < 0.05:
            return None
        elapsed = float(self.clock()) - self.started_at
        if elapsed < MIN_ELAPSED_FOR_ETA:
            return None
        fraction = done / total
        return round(max(0.0, elapsed * (1 - fraction) / fraction), 1)

    @property
    def stage(self) -> str | None:
        if self.current is None:
            return None
        return stage_of(self._class(self.current), sampling=self.current in self.stepping)

    def timings(self) -> dict[str, float]:
        """Measured seconds per node class (samplers: per step), to learn from."""
        measured: dict[str, float] = {}
        for node_id, seconds in self._measured.items():
            class_type = self._class(node_id)
            if node_id in self.stepping and self._steps_seen.get(node_id):
                measured[STEP_KEY.format(class_type)] = seconds / self._steps_seen[node_id]
            else:
                measured[class_type] = seconds
        return measured

    def snapshot(self, stage: str | None = None) -> dict[str, Any]:
        node_type = None
        if self.current is not None:
            node_type = (self.graph.get(self.current) or {}).get("class_type")
        return {
            "progress": self.fraction,
            "node": self.current,
            "node_type": node_type,
            "stage": stage or self.stage,
            "step": self.step,
            "max_steps": self.max,
            "max": self.max,  # the name before 0.2; max_steps is the one to use
            "eta_seconds": self.eta_seconds(),
        }


def learn(learned: dict[str, float], measured: dict[str, float]) -> None:
    """Fold one job's measurements into a backend's running averages."""
    for key, seconds in measured.items():
        old = learned.get(key)
        learned[key] = seconds if old is None else old + LEARNING_RATE * (seconds - old)
