"""Graph mechanics of ComfyUI's executor: the classic input-signature cache and the
topological execution list with its UX-friendly pick order (comfy_execution/graph.py,
comfy_execution/caching.py), re-implemented for the fake."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

JsonDict = dict[str, Any]


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
        and not isinstance(value[1], bool)
    )


class Unhashable:
    """Stands for ComfyUI's NaN signature part: equal to nothing, so never a cache hit."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NaN"


def to_hashable(value: Any) -> Hashable:
    if value is None or isinstance(value, int | float | str | bool):
        return value
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), to_hashable(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(to_hashable(v) for v in value))
    return Unhashable()


class Signatures:
    """Input signatures of the prompt's nodes: class, IS_CHANGED, literals, ancestry."""

    def __init__(
        self,
        prompt: JsonDict,
        is_changed: Mapping[str, Hashable],
        includes_node_id: Callable[[str], bool],
    ) -> None:
        self._prompt = prompt
        self._is_changed = is_changed
        self._includes_node_id = includes_node_id

    def of(self, node_id: str) -> Hashable:
        ancestors: list[str] = []
        order: dict[str, int] = {}
        self._ancestry(node_id, ancestors, order)
        parts = [self._immediate(node_id, order)]
        parts.extend(self._immediate(a, order) for a in ancestors)
        return tuple(parts)

    def _ancestry(self, node_id: str, ancestors: list[str], order: dict[str, int]) -> None:
        node = self._prompt.get(node_id)
        if node is None:
            return
        # Nodes no output needs were never validated; tolerate them being malformed.
        inputs = node.get("inputs", {})
        for key in sorted(inputs):
            value = inputs[key]
            if is_link(value) and value[0] not in order:
                ancestors.append(value[0])
                order[value[0]] = len(ancestors) - 1
                self._ancestry(value[0], ancestors, order)

    def _immediate(self, node_id: str, order: Mapping[str, int]) -> Hashable:
        node = self._prompt.get(node_id)
        if node is None:
            return (Unhashable(),)
        class_type = node["class_type"]
        parts: list[Hashable] = [class_type, self._is_changed.get(node_id, False)]
        if self._includes_node_id(class_type):
            parts.append(node_id)
        inputs = node.get("inputs", {})
        for key in sorted(inputs):
            value = inputs[key]
            if is_link(value):
                parts.append((key, ("ANCESTOR", order[value[0]], value[1])))
            else:
                parts.append((key, to_hashable(value)))
        return tuple(parts)


_MISSING = object()


class SignatureCache:
    """The "classic" cache: values keyed by input signature; starting a prompt drops every
    entry the new prompt does not use."""

    def __init__(self) -> None:
        self._data: dict[Hashable, Any] = {}
        self._keys: dict[str, Hashable] = {}

    def set_prompt(self, keys: Mapping[str, Hashable]) -> None:
        self._keys = dict(keys)
        used = set(self._keys.values())
        self._data = {k: v for k, v in self._data.items() if k in used}

    def get(self, node_id: str) -> Any:
        key = self._keys.get(node_id, _MISSING)
        if key is _MISSING:
            return None
        return self._data.get(key)

    def set(self, node_id: str, value: Any) -> None:
        self._data[self._keys[node_id]] = value

    def node_ids(self) -> list[str]:
        return list(self._keys)


class ExecutionList:
    """Topological dissolve of the graph needed by the requested outputs."""

    def __init__(
        self,
        prompt: JsonDict,
        is_output: Callable[[str], bool],
        is_cached: Callable[[str], bool],
    ) -> None:
        self._prompt = prompt
        self._is_output_class = is_output
        self._is_cached = is_cached
        self._pending: dict[str, None] = {}
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, dict[str, set[Any]]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, Any, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self._pending:
                continue
            self._pending[unique_id] = None
            self._block_count[unique_id] = 0
            self._blocking[unique_id] = {}
            for value in self._prompt[unique_id]["inputs"].values():
                if is_link(value) and not self._is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], value[1], unique_id))
        for source, socket, target in links:
            self._add_strong_link(source, socket, target)

    def _add_strong_link(self, source: str, socket: Any, target: str) -> None:
        if self._is_cached(source):
            return
        self.add_node(source)
        if target not in self._blocking[source]:
            self._blocking[source][target] = set()
            self._block_count[target] += 1
        self._blocking[source][target].add(socket)

    def is_empty(self) -> bool:
        return not self._pending

    def _is_output(self, node_id: str) -> bool:
        return self._is_output_class(self._prompt[node_id]["class_type"])

    def next_node(self) -> str | None:
        """The node to run next, or None when the remaining nodes form a cycle."""
        ready = [n for n in self._pending if self._block_count[n] == 0]
        if not ready:
            return None
        # Output nodes first, so previews appear early; then nodes feeding an output, then
        # nodes two hops away (e.g. VAELoader -> VAEDecode -> Preview).
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(b) for b in self._blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self._blocking[node_id]:
                if any(self._is_output(b) for b in self._blocking[blocked]):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self._pending[node_id]
        for blocked in self._blocking.pop(node_id):
            self._block_count[blocked] -= 1

    def cycle(self) -> list[str]:
        """Pending nodes that sit on a dependency cycle."""
        blocked_by: dict[str, set[str]] = {n: set() for n in self._pending}
        for source, targets in self._blocking.items():
            for target in targets:
                blocked_by[target].add(source)
        free = [n for n, deps in blocked_by.items() if not deps]
        while free:
            for node_id in free:
                for deps in blocked_by.values():
                    deps.discard(node_id)
                del blocked_by[node_id]
            free = [n for n, deps in blocked_by.items() if not deps]
        return list(blocked_by)
