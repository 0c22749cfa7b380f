"""The contract between the executor and the fake node implementations."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from PIL import Image

from atelier.testing.media import Dirs

T = TypeVar("T")

JsonDict = dict[str, Any]


class FakeNodeError(Exception):
    """Raised by a node whose class has a fault injected with `FakeComfyUI.fail_node`.

    `exception_type` is what `execution_error.exception_type` reports (ComfyUI reports the
    module-qualified name of the exception class, e.g. "torch.OutOfMemoryError").
    """

    def __init__(self, message: str, exception_type: str = "RuntimeError") -> None:
        super().__init__(message)
        self.exception_type = exception_type


@dataclass
class Timing:
    step_time: float = 0.0
    node_time: float = 0.0
    model_load_time: float = 0.0


@dataclass
class ModelState:
    """What the simulated GPU holds; ComfyUI keeps the last checkpoint loaded."""

    loaded_checkpoint: str | None = None
    model_switches: int = 0


@dataclass
class NodeOutput:
    result: tuple[Any, ...] = ()
    ui: JsonDict | None = None


class NodeContext(Protocol):
    node_id: str
    class_type: str
    prompt_id: str
    dirs: Dirs
    prompt: JsonDict
    extra_data: JsonDict
    timing: Timing
    models: ModelState

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work off the event loop (like ComfyUI's worker thread)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Spend time without being interruptible (a node with no progress hook)."""
        ...

    async def progress(self, value: int, total: int, preview: Image.Image | None = None) -> None:
        """A ProgressBar hook call: raises if interrupted, then reports progress."""
        ...

    def send_text(self, text: str) -> None:
        """A binary TEXT frame for this node (always broadcast)."""
        ...

    def write(self, path: Path, data: bytes) -> None: ...


NodeFunc = Callable[[NodeContext, JsonDict], Awaitable[NodeOutput]]

NODES: dict[str, NodeFunc] = {}


def node(*class_types: str) -> Callable[[NodeFunc], NodeFunc]:
    def register(fn: NodeFunc) -> NodeFunc:
        for class_type in class_types:
            NODES[class_type] = fn
        return fn

    return register


def temp_prefix() -> str:
    # Same alphabet as ComfyUI (which has the "p" twice and no "w").
    return "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
