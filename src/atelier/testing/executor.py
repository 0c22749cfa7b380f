"""Runs one prompt the way ComfyUI's `PromptExecutor.execute_async` does, message for message.

Per node: progress_state(running) -> executing -> [progress ...] -> [executed] ->
progress_state(finished). Cached output nodes only get `executed` (their old UI) and a
finished progress_state. The interrupt flag is looked at when a node starts (after its
`executing`) and in every progress hook, so a long node without a hook runs to the end
and the *next* node is blamed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import time
import traceback
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from PIL import Image

from atelier.testing import nodes_image as _nodes_image  # noqa: F401  (registers nodes)
from atelier.testing import nodes_video as _nodes_video  # noqa: F401  (registers nodes)
from atelier.testing.graph import ExecutionList, SignatureCache, Signatures, Unhashable, is_link
from atelier.testing.media import Dirs, encode_png, write_file
from atelier.testing.node_api import (
    NODES,
    FakeNodeError,
    JsonDict,
    ModelState,
    NodeOutput,
    Timing,
)
from atelier.testing.nodes_model import simulate
from atelier.testing.schema import NodeSchemas
from atelier.testing.validation import full_type_name
from atelier.testing.values import format_value

T = TypeVar("T")

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

OOM_TYPES = frozenset({"torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError"})
OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked "
    "before you might have accidentally set the batch_size to a large number."
)


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException."""


class ExecutorHost(Protocol):
    """What the executor needs from the server around it."""

    dirs: Dirs
    timing: Timing
    models: ModelState
    client_id: str | None
    last_node_id: str | None

    def schemas(self) -> NodeSchemas: ...

    def send_sync(self, event: str | int, data: Any, sid: str | None) -> None: ...

    def interrupt_requested(self) -> bool: ...

    async def wait_awake(self) -> None: ...

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T: ...

    def supports_preview_metadata(self, sid: str | None) -> bool: ...

    def injected_fault(self, class_type: str) -> FakeNodeError | None: ...


@dataclass
class Outcome:
    success: bool
    messages: list[tuple[str, JsonDict]]
    outputs: JsonDict = field(default_factory=dict)
    meta: JsonDict = field(default_factory=dict)


class _Progress:
    """comfy_execution.progress.ProgressRegistry with its WebUI handler."""

    def __init__(self, host: ExecutorHost, prompt_id: str) -> None:
        self._host = host
        self._prompt_id = prompt_id
        self._nodes: dict[str, JsonDict] = {}

    def _entry(self, node_id: str) -> JsonDict:
        return self._nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def _send(self) -> None:
        active = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self._prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self._nodes.items()
            if entry["state"] != "pending"
        }
        data = {"prompt_id": self._prompt_id, "nodes": active}
        self._host.send_sync("progress_state", data, self._host.client_id)

    def start(self, node_id: str) -> None:
        self._entry(node_id).update(state="running", value=0.0, max=1.0)
        self._send()

    def update(self, node_id: str, value: float, total: float) -> None:
        self._entry(node_id).update(state="running", value=value, max=total)
        self._send()

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._send()


class _NodeRun:
    """The NodeContext handed to one node implementation."""

    def __init__(self, run: _PromptRun, node_id: str, class_type: str) -> None:
        self._run = run
        self._host = run.host
        self.node_id = node_id
        self.class_type = class_type
        self.prompt_id = run.prompt_id
        self.dirs = run.host.dirs
        self.prompt = run.prompt
        self.extra_data = run.extra_data
        self.timing = run.host.timing
        self.models = run.host.models

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._host.cpu(fn, *args)

    async def sleep(self, seconds: float) -> None:
        await self._run.sleep(seconds)

    async def progress(self, value: int, total: int, preview: Image.Image | None = None) -> None:
        host = self._host
        await host.wait_awake()
        if host.interrupt_requested():
            raise Interrupted("Processing interrupted")
        value = min(value, total)
        self._run.progress.update(self.node_id, value, total)
        sid = host.client_id
        png = await self.cpu(encode_png, preview, None, 1) if preview is not None else None
        with_metadata = host.supports_preview_metadata(sid)
        if png is not None and with_metadata:
            metadata = json.dumps(
                {
                    "node_id": self.node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": self.node_id,
                    "parent_node_id": None,
                    "real_node_id": self.node_id,
                    "image_type": "image/png",
                }
            ).encode()
            frame = struct.pack(">I", len(metadata)) + metadata + png
            host.send_sync(PREVIEW_IMAGE_WITH_METADATA, frame, sid)
        data = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id}
        host.send_sync("progress", data, sid)
        if png is not None and not with_metadata:
            host.send_sync(PREVIEW_IMAGE, struct.pack(">I", 2) + png, sid)

    def send_text(self, text: str) -> None:
        node = self.node_id.encode()
        self._host.send_sync(TEXT, struct.pack(">I", len(node)) + node + text.encode(), None)

    def write(self, path: Path, data: bytes) -> None:
        write_file(path, data)


class _PromptRun:
    def __init__(
        self, host: ExecutorHost, prompt: JsonDict, prompt_id: str, extra_data: JsonDict
    ) -> None:
        self.host = host
        self.prompt = prompt
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        self.progress = _Progress(host, prompt_id)
        self.executed: list[str] = []
        self.messages: list[tuple[str, JsonDict]] = []

    async def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            await self.host.wait_awake()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    def add_message(self, event: str, data: JsonDict, broadcast: bool) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append((event, data))
        if self.host.client_id is not None or broadcast:
            self.host.send_sync(event, data, self.host.client_id)


def _file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class PromptExecutor:
    def __init__(self, host: ExecutorHost) -> None:
        self._host = host
        self.reset()

    def reset(self) -> None:
        self._outputs = SignatureCache()
        self._ui = SignatureCache()

    async def _is_changed(self, prompt: JsonDict) -> dict[str, Hashable]:
        values: dict[str, Hashable] = {}
        for node_id, node in prompt.items():
            class_type = node["class_type"]
            if class_type in ("LoadImage", "LoadImageMask"):
                image = node.get("inputs", {}).get("image")
                try:
                    path = self._host.dirs.annotated_path(image)
                    values[node_id] = await self._host.cpu(_file_sha256, path)
                except (OSError, AttributeError, TypeError):
                    values[node_id] = Unhashable()
            elif class_type == "SaveImageWebsocket":
                values[node_id] = time.time()
        return values

    async def execute(
        self, prompt: JsonDict, prompt_id: str, extra_data: JsonDict, outputs: list[str]
    ) -> Outcome:
        host = self._host
        schemas = host.schemas()
        host.client_id = extra_data.get("client_id")
        run = _PromptRun(host, prompt, prompt_id, extra_data)
        run.add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)

        def includes_node_id(class_type: str) -> bool:
            return "UNIQUE_ID" in schemas.hidden_inputs(class_type).values()

        signatures = Signatures(prompt, await self._is_changed(prompt), includes_node_id)
        keys = {node_id: signatures.of(node_id) for node_id in prompt}
        self._outputs.set_prompt(keys)
        self._ui.set_prompt(keys)
        cached = [n for n in prompt if self._outputs.get(n) is not None]
        run.add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, False)

        success = True
        execution = ExecutionList(
            prompt, schemas.is_output_node, lambda n: self._outputs.get(n) is not None
        )
        for output_id in outputs:
            execution.add_node(output_id)
        while not execution.is_empty():
            node_id = execution.next_node()
            if node_id is None:
                # A runtime cycle does not flip `success` in ComfyUI either.
                blamed = execution.cycle()[0]
                error: JsonDict = {
                    "node_id": blamed,
                    "exception_message": "Dependency cycle detected",
                    "exception_type": "graph.DependencyCycleError",
                    "traceback": [],
                    "current_inputs": [],
                }
                self._report_error(run, error, interrupted=False)
                break
            await host.wait_awake()
            failure = await self._execute_node(run, node_id)
            success = failure is None
            if failure is not None:
                interrupted = bool(failure.pop("interrupted", False))
                self._report_error(run, failure, interrupted=interrupted)
                break
            execution.complete(node_id)
        else:
            run.add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)

        outcome = Outcome(success, run.messages)
        for ui_node in self._ui.node_ids():
            ui = self._ui.get(ui_node)
            if ui is not None:
                outcome.outputs[ui_node] = ui["output"]
                outcome.meta[ui_node] = ui["meta"]
        host.last_node_id = None
        return outcome

    def _report_error(self, run: _PromptRun, error: JsonDict, interrupted: bool) -> None:
        node_id = error["node_id"]
        data: JsonDict = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": run.prompt[node_id]["class_type"],
            "executed": list(run.executed),
        }
        if interrupted:
            run.add_message("execution_interrupted", data, broadcast=True)
            return
        data.update(
            exception_message=error["exception_message"],
            exception_type=error["exception_type"],
            traceback=error["traceback"],
            current_inputs=error["current_inputs"],
            current_outputs=self._outputs.node_ids(),
        )
        run.add_message("execution_error", data, broadcast=False)

    def _input_data(self, run: _PromptRun, node_id: str) -> JsonDict:
        schemas = self._host.schemas()
        node = run.prompt[node_id]
        class_type = node["class_type"]
        data: JsonDict = {}
        for name, value in node["inputs"].items():
            spec = schemas.input_spec(class_type, name)
            if is_link(value):
                produced = self._outputs.get(value[0])
                index = int(value[1])
                missing = produced is None or index >= len(produced)
                data[name] = None if missing else produced[index]
            elif spec is not None:
                data[name] = value
        for name, kind in schemas.hidden_inputs(class_type).items():
            if kind == "PROMPT":
                data[name] = run.prompt
            elif kind == "EXTRA_PNGINFO":
                data[name] = run.extra_data.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                data[name] = node_id
        return data

    async def _execute_node(self, run: _PromptRun, node_id: str) -> JsonDict | None:
        """Runs (or replays from cache) one node; returns error details on failure."""
        host = self._host
        class_type = run.prompt[node_id]["class_type"]
        if self._outputs.get(node_id) is not None:
            if host.client_id is not None:
                cached_ui = self._ui.get(node_id) or {}
                data = {
                    "node": node_id,
                    "display_node": node_id,
                    "output": cached_ui.get("output"),
                    "prompt_id": run.prompt_id,
                }
                host.send_sync("executed", data, host.client_id)
            run.progress.finish(node_id)
            return None

        inputs: JsonDict | None = None
        try:
            run.progress.start(node_id)
            inputs = self._input_data(run, node_id)
            if host.client_id is not None:
                host.last_node_id = node_id
                data = {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id}
                host.send_sync("executing", data, host.client_id)
            if host.interrupt_requested():
                raise Interrupted("Processing interrupted")
            fault = host.injected_fault(class_type)
            if fault is not None:
                raise fault
            await run.sleep(host.timing.node_time)
            result = await self._call_node(run, node_id, class_type, inputs)
        except Interrupted:
            return {"node_id": node_id, "interrupted": True}
        except Exception as ex:  # a failing node is reported to the client, as in ComfyUI
            return self._error_details(node_id, ex, inputs)

        if result.ui:
            meta = {
                "node_id": node_id,
                "display_node": node_id,
                "parent_node": None,
                "real_node_id": node_id,
            }
            self._ui.set(node_id, {"meta": meta, "output": result.ui})
            if host.client_id is not None:
                data = {
                    "node": node_id,
                    "display_node": node_id,
                    "output": result.ui,
                    "prompt_id": run.prompt_id,
                }
                host.send_sync("executed", data, host.client_id)
        self._outputs.set(node_id, result.result)
        run.progress.finish(node_id)
        run.executed.append(node_id)
        return None

    async def _call_node(
        self, run: _PromptRun, node_id: str, class_type: str, inputs: JsonDict
    ) -> NodeOutput:
        context = _NodeRun(run, node_id, class_type)
        implementation = NODES.get(class_type)
        if implementation is not None:
            return await implementation(context, inputs)
        output_types = self._host.schemas().return_types(class_type)
        return await simulate(context, inputs, output_types)

    def _error_details(self, node_id: str, ex: Exception, inputs: JsonDict | None) -> JsonDict:
        if isinstance(ex, FakeNodeError):
            exception_type = ex.exception_type
        else:
            exception_type = full_type_name(type(ex))
        tips = ""
        if exception_type in OOM_TYPES:
            tips = OOM_TIPS
            # ComfyUI unloads every model after an OOM.
            self._host.models.loaded_checkpoint = None
        formatted = {k: [format_value(v)] for k, v in (inputs or {}).items()}
        return {
            "node_id": node_id,
            "exception_message": f"{ex}\n{tips}",
            "exception_type": exception_type,
            "traceback": traceback.format_tb(ex.__traceback__),
            "current_inputs": formatted,
        }
