"""Tools to record a fake ComfyUI's WebSocket traffic and to compare transcripts with the
real captures in tests/data/captures, ids, timestamps and counters aside."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import websockets
from PIL import Image

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
COMFY_ROOT_IN_CAPTURES = "/opt/ComfyUI"

Message = dict[str, Any] | bytes


def load_capture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / f"{name}.json").read_text())
    return data


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


class WsRecorder:
    """A WebSocket client that records everything it receives, in order."""

    def __init__(self, base_url: str, client_id: str | None = None) -> None:
        ws_url = base_url.replace("http://", "ws://") + "/ws"
        self.url = f"{ws_url}?clientId={client_id}" if client_id else ws_url
        self.messages: list[Message] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsRecorder:
        self._ws = await websockets.connect(self.url, max_size=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self.messages.append(raw if isinstance(raw, bytes) else json.loads(raw))
                self._changed.set()
        except websockets.ConnectionClosed:
            pass  # an abrupt close is what crash tests provoke; `closed` records it
        finally:
            self.closed.set()
            self._changed.set()

    def json_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if isinstance(m, dict)]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.json_messages():
                if predicate(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or self.closed.is_set():
                raise AssertionError(f"no matching WS message in {timeout}s: {self.types()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def wait_count(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())

    async def wait_done(self, prompt_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return await self.wait_for(lambda m: is_end_of(m, prompt_id), timeout)

    def types(self) -> list[str]:
        return [m["type"] if isinstance(m, dict) else "<binary>" for m in self.messages]


def is_end_of(message: dict[str, Any], prompt_id: str) -> bool:
    data = message.get("data", {})
    return (
        message.get("type") == "executing"
        and data.get("node") is None
        and data.get("prompt_id") == prompt_id
    )


# -- normalisation ---------------------------------------------------------------------

TEMP_NAME = re.compile(r"_temp_[a-z]{5}_")
# (path pattern, replacement): "*" matches any key or index; a callable maps the value.
Mask = tuple[tuple[Any, ...], Any]


def _type_name(value: Any) -> str:
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else (type(value).__name__)
    )


VOLATILE: list[Mask] = [
    (("number",), "<number>"),
    (("*", "prompt", 0), "<number>"),
    (("queue_running", "*", 0), "<number>"),
    (("queue_pending", "*", 0), "<number>"),
    (("system", "ram_total"), _type_name),
    (("system", "ram_free"), _type_name),
    (("system", "python_version"), _type_name),
    (("system", "pytorch_version"), _type_name),
    (("system", "argv"), _type_name),
    (("devices", "*", "name"), "<device>"),
    (("devices", "*", "type"), "<device>"),
    (("devices", "*", "index"), "<device>"),
    (("devices", "*", "vram_total"), _type_name),
    (("devices", "*", "vram_free"), _type_name),
    (("devices", "*", "torch_vram_total"), _type_name),
    (("devices", "*", "torch_vram_free"), _type_name),
]
# Keys whose values are timing or machine dependent wherever they appear.
VOLATILE_KEYS: dict[str, Any] = {"timestamp": "<timestamp>", "traceback": "<traceback>"}
# Lists that ComfyUI builds from Python sets (arbitrary order).
UNORDERED_KEYS = {"executed", "current_outputs"}


def _matches(pattern: tuple[Any, ...], path: tuple[Any, ...]) -> bool:
    return len(pattern) == len(path) and all(
        p in ("*", q) for p, q in zip(pattern, path, strict=True)
    )


def normalize(
    value: Any, rewrite: Callable[[str], str] = lambda s: s, path: tuple[Any, ...] = ()
) -> Any:
    for pattern, replacement in VOLATILE:
        if _matches(pattern, path):
            return replacement(value) if callable(replacement) else replacement
    if path and path[-1] in VOLATILE_KEYS:
        return VOLATILE_KEYS[path[-1]]
    if isinstance(value, dict):
        return {rewrite(k): normalize(v, rewrite, (*path, rewrite(k))) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalize(v, rewrite, (*path, i)) for i, v in enumerate(value)]
        if path and path[-1] in UNORDERED_KEYS:
            items.sort(key=json.dumps)
        return items
    if isinstance(value, str):
        return TEMP_NAME.sub("_temp_xxxxx_", rewrite(value))
    return value


def ws_signature(message: Message) -> tuple[Any, ...]:
    """What must match between a real and a fake WS message."""
    if isinstance(message, bytes):
        return ("<binary>", int.from_bytes(message[:4], "big"))
    kind, data = message["type"], message["data"]
    keys = tuple(sorted(data))
    if kind == "status":
        return (kind, keys, data["status"]["exec_info"]["queue_remaining"])
    if kind == "progress_state":
        nodes = data["nodes"]
        states = frozenset((node_id, entry["state"]) for node_id, entry in nodes.items())
        entry_keys = frozenset(tuple(sorted(entry)) for entry in nodes.values())
        return (kind, keys, states, entry_keys)
    if kind == "executing":
        return (kind, keys, data["node"])
    if kind == "execution_cached":
        return (kind, keys, tuple(data["nodes"]))
    if kind == "executed":
        output = data["output"]
        return (kind, keys, data["node"], tuple(sorted(output)) if output else None)
    if kind in ("execution_error", "execution_interrupted"):
        return (kind, keys, data["node_id"], data["node_type"], tuple(sorted(data["executed"])))
    return (kind, keys)


def ws_signatures(messages: Iterable[Message]) -> list[tuple[Any, ...]]:
    return [ws_signature(m) for m in messages]
