"""Faults of the fake ComfyUI that another process can switch on at runtime, and its
execution log.

`POST /fake/fault` (not a ComfyUI route) takes a JSON object; every field is optional:

    {"hang": true}            freeze like a stopped process (requests wait, nothing runs)
    {"errors": true}          answer every ComfyUI route with a 500, as a broken server does
    {"page": 403}             answer every ComfyUI route with this status and an HTML page, as a
                              login page or a proxy in front of the wrong thing does (0: off)
    {"view_delay": 2.5}       wait this long before answering each GET /view
    {"drop_websockets": true} close every WebSocket from the server side, once
    {"for_seconds": 5}        undo what this request switched on after that long

`GET /fake/fault` answers the current switches. The /fake/ routes stay reachable while
the fake hangs or fails, so the switch that started a fault can end it.

The execution log (``--execution-log`` of ``atelier fake-comfyui``) gets one JSON line
when a prompt starts executing and one when it ends, written straight to the file, so it
survives a SIGKILL of the fake: a chaos run counts duplicate executions from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class FaultRequest(BaseModel):
    """The body of POST /fake/fault."""

    model_config = ConfigDict(extra="forbid")

    hang: bool | None = None
    errors: bool | None = None
    page: int | None = Field(None, ge=0, le=599)
    view_delay: float | None = Field(None, ge=0, le=3600)
    drop_websockets: bool = False
    for_seconds: float | None = Field(None, gt=0, le=3600)


class FaultHost(Protocol):
    def hang(self) -> None: ...

    def unhang(self) -> None: ...

    @property
    def hung(self) -> bool: ...

    async def drop_websockets(self) -> None: ...


class FaultSwitches:
    """The runtime faults of one fake process (lost with it, like everything in memory)."""

    def __init__(self, host: FaultHost, view_delay: float = 0.0) -> None:
        self._host = host
        self.errors = False
        self.page = 0  # 0: off; else the status of the HTML page every ComfyUI route answers
        self.view_delay = view_delay
        self._reverts: set[asyncio.Task[None]] = set()

    def state(self) -> dict[str, Any]:
        return {
            "hang": self._host.hung,
            "errors": self.errors,
            "page": self.page,
            "view_delay": self.view_delay,
        }

    async def apply(self, request: FaultRequest) -> dict[str, Any]:
        before = self.state()
        if request.hang is not None:
            self._host.hang() if request.hang else self._host.unhang()
        if request.errors is not None:
            self.errors = request.errors
        if request.page is not None:
            self.page = request.page
        if request.view_delay is not None:
            self.view_delay = request.view_delay
        if request.drop_websockets:
            await self._host.drop_websockets()
        if request.for_seconds is not None:
            changed = {k: before[k] for k, v in self.state().items() if before[k] != v}
            task = asyncio.get_running_loop().create_task(
                self._revert_after(request.for_seconds, changed), name="fake-comfyui-fault"
            )
            self._reverts.add(task)
            task.add_done_callback(self._reverts.discard)
        return self.state()

    async def _revert_after(self, seconds: float, previous: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)
        await self.apply(
            FaultRequest(
                hang=previous.get("hang"),
                errors=previous.get("errors"),
                page=previous.get("page"),
                view_delay=previous.get("view_delay"),
            )
        )

    async def close(self) -> None:
        for task in list(self._reverts):
            task.cancel()
        await asyncio.gather(*self._reverts, return_exceptions=True)


@dataclass(frozen=True)
class Execution:
    """One line of an execution log."""

    event: str  # "start" or "end"
    prompt_id: str
    time: float  # wall clock (time.time()), comparable across processes
    pid: int
    name: str
    success: bool | None = None


class ExecutionLog:
    """Appends a line per prompt start and end; each line is one write(2) on an O_APPEND
    descriptor, so a SIGKILL leaves whole lines (at most the one being written is cut)."""

    def __init__(self, path: str | Path, name: str) -> None:
        self.path = Path(path)
        self.name = name

    def started(self, prompt_id: str) -> None:
        self._write({"event": "start", "prompt_id": prompt_id})

    def ended(self, prompt_id: str, success: bool) -> None:
        self._write({"event": "end", "prompt_id": prompt_id, "success": success})

    def _write(self, record: dict[str, Any]) -> None:
        record = {**record, "time": time.time(), "pid": os.getpid(), "name": self.name}
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read_execution_log(path: str | Path) -> Iterator[Execution]:
    """The whole lines of a log; a line cut by a kill is skipped."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        yield Execution(
            event=record["event"],
            prompt_id=record["prompt_id"],
            time=record["time"],
            pid=record["pid"],
            name=record["name"],
            success=record.get("success"),
        )
