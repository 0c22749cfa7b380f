"""Convert a workflow saved by the ComfyUI editor (UI format) to the API format.

The editor saves ``{"nodes": [...], "links": [...]}``: each node has a ``type``, its
socket ``inputs`` (with link ids), and ``widgets_values``, the values of its widgets in
the order the node declares its widget inputs in ``/object_info``. Like the editor's own
"graphToPrompt", this maps widget values to input names (skipping the hidden
"control_after_generate" slots the editor stores after seed-like inputs, whatever they
hold, and giving widgets without a saved value their ``/object_info`` default), follows links
through Reroute nodes, replaces PrimitiveNode links by the primitive's value, drops muted
nodes (mode 2), passes bypassed nodes (mode 4) through (an output is replaced by the
node's first input of the same type), flattens subgraphs (inner nodes get ids
``"<instance>:<inner>"``), and keeps only the nodes that feed an output node, since those
are all ComfyUI runs. What cannot be converted is reported node by node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from atelier.errors import WorkflowNotConvertible
from atelier.workflows.schemas import InputSpec, inputs_of, node_info

JsonDict = dict[str, Any]

NOTE_TYPES = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
WIDGET_LINK_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
MUTED, BYPASSED = 2, 4
MAX_DEPTH = 64

Source = tuple[str, Any, int]  # ("link", api node id, output slot) or ("value", value, 0)


def is_ui_format(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


@dataclass
class _Link:
    origin: Any
    origin_slot: int
    target: Any
    target_slot: int


@dataclass
class _Scope:
    """One graph level: the top level, or one instance of a subgraph."""

    nodes: dict[Any, JsonDict]
    links: dict[Any, _Link]
    prefix: str = ""
    parent: _Scope | None = None
    instance: JsonDict | None = None
    definition: JsonDict | None = None
    # values for the instance's unlinked widget inputs, by subgraph input index
    promoted: dict[int, Any] = field(default_factory=dict)


class _Converter:
    def __init__(self, workflow: JsonDict, schemas: Sequence[JsonDict]) -> None:
        self.schemas = schemas
        definitions = workflow.get("definitions") or {}
        self.subgraphs: dict[str, JsonDict] = {
            str(s.get("id")): s for s in definitions.get("subgraphs") or [] if isinstance(s, dict)
        }
        self.problems: list[JsonDict] = []
        self.api: JsonDict = {}

    # -- structure -----------------------------------------------------------------

    def scope(self, data: JsonDict, **kwargs: Any) -> _Scope:
        nodes: dict[Any, JsonDict] = {}
        for node in data.get("nodes") or []:
            if isinstance(node, dict) and "id" in node:
                nodes[node["id"]] = node
        links: dict[Any, _Link] = {}
        for raw in data.get("links") or []:
            if isinstance(raw, list) and len(raw) >= 5:
                links[raw[0]] = _Link(raw[1], int(raw[2] or 0), raw[3], int(raw[4] or 0))
            elif isinstance(raw, dict) and "id" in raw:
                links[raw["id"]] = _Link(
                    raw.get("origin_id"),
                    int(raw.get("origin_slot") or 0),
                    raw.get("target_id"),
                    int(raw.get("target_slot") or 0),
                )
        return _Scope(nodes, links, **kwargs)

    def child(self, scope: _Scope, instance: JsonDict) -> _Scope:
        definition = self.subgraphs[str(instance["type"])]
        child = self.scope(
            definition,
            prefix=f"{scope.prefix}{instance['id']}:",
            parent=scope,
            instance=instance,
            definition=definition,
        )
        child.promoted = _promoted_values(definition, instance)
        return child

    def problem(self, scope: _Scope, node: JsonDict | None, reason: str) -> None:
        entry: JsonDict = {"reason": reason}
        if node is not None:
            entry["node_id"] = f"{scope.prefix}{node.get('id')}"
            entry["node_type"] = node.get("type")
        if entry not in self.problems:
            self.problems.append(entry)

    # -- resolving where an input's value comes from -------------------------------------

    def resolve(self, scope: _Scope, link_id: Any, depth: int = 0) -> Source | None:
        if depth > MAX_DEPTH:
            return None
        link = scope.links.get(link_id)
        if link is None:
            return None
        if link.origin == -10 and scope.instance is not None and scope.parent is not None:
            # A subgraph input: what the instance is given outside, else its promoted value.
            inputs = scope.instance.get("inputs") or []
            outer = _input_for(inputs, scope.definition or {}, link.origin_slot)
            if outer is not None and outer.get("link") is not None:
                return self.resolve(scope.parent, outer["link"], depth + 1)
            if link.origin_slot in scope.promoted:
                return ("value", scope.promoted[link.origin_slot], 0)
            return None
        node = scope.nodes.get(link.origin)
        if node is None:
            return None
        return self.output_of(scope, node, link.origin_slot, depth + 1)

    def output_of(self, scope: _Scope, node: JsonDict, slot: int, depth: int) -> Source | None:
        kind = str(node.get("type"))
        mode = node.get("mode", 0)
        if mode == MUTED:
            return None
        if mode == BYPASSED:
            return self.bypass(scope, node, slot, depth)
        if kind == "Reroute":
            inputs = node.get("inputs") or []
            return self.resolve(scope, inputs[0].get("link"), depth) if inputs else None
        if kind == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return ("value", values[0], 0) if values else None
        if kind in self.subgraphs:
            child = self.child(scope, node)
            for link_id, link in child.links.items():
                if link.target == -20 and link.target_slot == slot:
                    return self.resolve(child, link_id, depth)
            return None
        return ("link", f"{scope.prefix}{node['id']}", slot)

    def bypass(self, scope: _Scope, node: JsonDict, slot: int, depth: int) -> Source | None:
        outputs = node.get("outputs") or []
        wanted = outputs[slot].get("type") if slot < len(outputs) else None
        inputs = node.get("inputs") or []
        order = ([inputs[slot]] if slot < len(inputs) else []) + list(inputs)
        for candidate in order:
            if candidate.get("link") is not None and candidate.get("type") == wanted:
                return self.resolve(scope, candidate["link"], depth)
        return None

    # -- nodes ---------------------------------------------------------------------

    def convert_scope(self, scope: _Scope) -> None:
        for node in scope.nodes.values():
            kind = str(node.get("type"))
            mode = node.get("mode", 0)
            if mode in (MUTED, BYPASSED) or kind in NOTE_TYPES:
                continue
            if kind in self.subgraphs:
                if scope.prefix.count(":") >= 8:
                    self.problem(scope, node, "subgraphs nested too deeply")
                    continue
                self.convert_scope(self.child(scope, node))
                continue
            if kind.startswith(("workflow>", "workflow/")):
                self.problem(scope, node, "group nodes (a legacy editor feature) are not supported")
                continue
            info = node_info(self.schemas, kind)
            if info is None:
                self.problem(scope, node, f"unknown node type {kind!r} (no backend has it)")
                continue
            self.convert_node(scope, node, info)

    def convert_node(self, scope: _Scope, node: JsonDict, info: JsonDict) -> None:
        specs = inputs_of(info)
        widgets = _widget_values(node, [s for s in specs if s.is_widget])
        sockets: dict[str, JsonDict] = {}
        for entry in node.get("inputs") or []:
            if isinstance(entry, dict):
                name = (entry.get("widget") or {}).get("name") or entry.get("name")
                sockets[str(name)] = entry
        inputs: JsonDict = {}
        declared = {s.name for s in specs}
        for spec in specs:
            socket = sockets.get(spec.name)
            source = None
            if socket is not None and socket.get("link") is not None:
                source = self.resolve(scope, socket["link"])
            if source is not None:
                inputs[spec.name] = _value(source)
            elif widgets.get(spec.name) is not None:
                inputs[spec.name] = widgets[spec.name]
        for name, socket in sockets.items():  # dynamic inputs the schema does not list
            if name not in declared and socket.get("link") is not None:
                source = self.resolve(scope, socket["link"])
                if source is not None:
                    inputs[name] = _value(source)
        title = node.get("title") or info.get("display_name") or node.get("type")
        self.api[f"{scope.prefix}{node['id']}"] = {
            "inputs": inputs,
            "class_type": node["type"],
            "_meta": {"title": str(title)},
        }


def _value(source: Source) -> Any:
    if source[0] == "link":
        return [source[1], source[2]]
    return source[1]


def _widget_values(node: JsonDict, specs: list[InputSpec]) -> JsonDict:
    """Every widget input's value, as the editor would send it.

    The editor builds one widget per widget input, in declaration order, plus hidden
    ones after each input with a "control after generate" combo (one slot for numbers,
    two for combos: the mode and a filter list). Loading a save assigns
    ``widgets_values`` to those widgets by position, whatever a hidden slot holds
    (``"randomize"``, or the legacy ``true`` of the default graph); a widget with no
    saved value keeps its default from ``/object_info``; extra values are ignored.
    Saves from before the hidden widgets existed have no such slots: a list exactly as
    long as the visible widgets, with no control value where a slot would be, is read
    that way.
    """
    raw = node.get("widgets_values")
    if isinstance(raw, dict):
        return {s.name: raw[s.name] if s.name in raw else default_value(s) for s in specs}
    values = list(raw) if isinstance(raw, list) else []
    layout = _slots(specs, with_controls=not _predates_controls(values, specs))
    return {
        spec.name: values[index] if index < len(values) else default_value(spec)
        for spec, index in layout
    }


def _is_control_value(value: Any) -> bool:
    """What the editor has stored in a control slot over the years: a mode name, or a
    boolean (the first "randomize" toggle), or nothing."""
    return (
        value is None
        or isinstance(value, bool)
        or (isinstance(value, str) and value in CONTROL_VALUES)
    )


def _control_slots(spec: InputSpec) -> int:
    if not spec.has_control_widget:
        return 0
    return 2 if spec.kind == "COMBO" else 1


def _slots(specs: list[InputSpec], *, with_controls: bool) -> list[tuple[InputSpec, int]]:
    layout: list[tuple[InputSpec, int]] = []
    index = 0
    for spec in specs:
        layout.append((spec, index))
        index += 1 + (_control_slots(spec) if with_controls else 0)
    return layout


def _predates_controls(values: list[Any], specs: list[InputSpec]) -> bool:
    if not any(_control_slots(s) for s in specs) or len(values) != len(specs):
        return False
    return not any(
        index + 1 < len(values) and _is_control_value(values[index + 1])
        for spec, index in _slots(specs, with_controls=True)
        if _control_slots(spec)
    )


def default_value(spec: InputSpec) -> Any:
    """The value the editor gives a new widget of this input."""
    if "default" in spec.options:
        return spec.options["default"]
    if spec.kind == "COMBO":
        return spec.choices[0] if spec.choices else None
    if spec.kind in ("INT", "FLOAT"):
        low = spec.options.get("min")
        return low if isinstance(low, int | float) and low > 0 else 0
    return {"STRING": "", "BOOLEAN": False}.get(spec.kind)


def _input_for(inputs: list[JsonDict], definition: JsonDict, slot: int) -> JsonDict | None:
    declared = definition.get("inputs") or []
    name = declared[slot].get("name") if slot < len(declared) else None
    by_name = [i for i in inputs if isinstance(i, dict) and i.get("name") == name]
    if by_name:
        return by_name[0]
    return inputs[slot] if slot < len(inputs) and isinstance(inputs[slot], dict) else None


def _promoted_values(definition: JsonDict, instance: JsonDict) -> dict[int, Any]:
    """Values an instance's own widgets give to the subgraph's widget-typed inputs (older
    subgraphs keep them on the instance; newer ones keep them on the inner nodes)."""
    values = instance.get("widgets_values")
    declared = definition.get("inputs") or []
    if not isinstance(values, list) or not values:
        return {}
    widget_slots = [
        index
        for index, entry in enumerate(declared)
        if isinstance(entry, dict) and str(entry.get("type")) in WIDGET_LINK_TYPES
    ]
    if len(widget_slots) != len(values):
        return {}  # not a layout we can map with certainty; inner values stand
    return dict(zip(widget_slots, values, strict=True))


def _reachable(api: JsonDict, schemas: Sequence[JsonDict]) -> JsonDict:
    """Only the nodes that feed an output node (ComfyUI runs nothing else)."""
    outputs = [
        node_id
        for node_id, node in api.items()
        if (node_info(schemas, node["class_type"]) or {}).get("output_node")
    ]
    keep: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in keep or node_id not in api:
            continue
        keep.add(node_id)
        for value in api[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                stack.append(value[0])
    return {node_id: node for node_id, node in api.items() if node_id in keep}


def ui_to_api(workflow: JsonDict, schemas: Sequence[JsonDict]) -> JsonDict:
    """The API-format graph of a UI-format workflow; raises WorkflowNotConvertible."""
    converter = _Converter(workflow, schemas)
    converter.convert_scope(converter.scope(workflow))
    if converter.problems:
        raise WorkflowNotConvertible(converter.problems)
    api = _reachable(converter.api, schemas)
    if not api:
        raise WorkflowNotConvertible(
            [{"reason": "the workflow has no output node (SaveImage, PreviewImage, ...)"}]
        )
    return api
