"""Typed ComfyUI WebSocket messages and HTTP payloads.

Only the fields Atelier reads are declared; everything else is kept (``extra="allow"``)
so that a newer ComfyUI does not break parsing. Unknown message types parse as
``UnknownMessage``: custom nodes may send anything.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class StatusData(_Data):
    status: dict[str, Any] = Field(default_factory=dict)
    sid: str | None = None

    @property
    def queue_remaining(self) -> int:
        return int(self.status.get("exec_info", {}).get("queue_remaining", 0))


class PromptData(_Data):
    prompt_id: str | None = None


class ExecutionCachedData(PromptData):
    nodes: list[str] = Field(default_factory=list)


class ExecutingData(PromptData):
    node: str | None = None
    display_node: str | None = None


class ProgressData(PromptData):
    value: float = 0
    max: float = 1
    node: str | None = None


class ExecutedData(PromptData):
    node: str
    output: dict[str, Any] | None = None


class ExecutionErrorData(PromptData):
    node_id: str | None = None
    node_type: str | None = None
    exception_message: str = ""
    exception_type: str = ""
    executed: list[str] = Field(default_factory=list)
    traceback: list[str] = Field(default_factory=list)


class ExecutionInterruptedData(PromptData):
    node_id: str | None = None
    node_type: str | None = None
    executed: list[str] = Field(default_factory=list)


class Status(BaseModel):
    type: Literal["status"]
    data: StatusData


class ExecutionStart(BaseModel):
    type: Literal["execution_start"]
    data: PromptData


class ExecutionCached(BaseModel):
    type: Literal["execution_cached"]
    data: ExecutionCachedData


class Executing(BaseModel):
    type: Literal["executing"]
    data: ExecutingData


class Progress(BaseModel):
    type: Literal["progress"]
    data: ProgressData


class ProgressState(BaseModel):
    type: Literal["progress_state"]
    data: _Data


class Executed(BaseModel):
    type: Literal["executed"]
    data: ExecutedData


class ExecutionSuccess(BaseModel):
    type: Literal["execution_success"]
    data: PromptData


class ExecutionError(BaseModel):
    type: Literal["execution_error"]
    data: ExecutionErrorData


class ExecutionInterrupted(BaseModel):
    type: Literal["execution_interrupted"]
    data: ExecutionInterruptedData


class UnknownMessage(BaseModel):
    type: str
    data: Any = None


class BinaryFrame(BaseModel):
    """A binary frame (previews, text): the first big-endian uint32 is its event type."""

    event: int
    payload: bytes


Message = (
    Status
    | ExecutionStart
    | ExecutionCached
    | Executing
    | Progress
    | ProgressState
    | Executed
    | ExecutionSuccess
    | ExecutionError
    | ExecutionInterrupted
    | UnknownMessage
    | BinaryFrame
)

_BY_TYPE: dict[str, type[BaseModel]] = {
    "status": Status,
    "execution_start": ExecutionStart,
    "execution_cached": ExecutionCached,
    "executing": Executing,
    "progress": Progress,
    "progress_state": ProgressState,
    "executed": Executed,
    "execution_success": ExecutionSuccess,
    "execution_error": ExecutionError,
    "execution_interrupted": ExecutionInterrupted,
}


def parse_message(raw: str | bytes) -> Message:
    """Parse one WebSocket frame; never raises on content a newer ComfyUI might send."""
    if isinstance(raw, bytes):
        event = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
        return BinaryFrame(event=event, payload=raw[4:])
    try:
        obj = json.loads(raw)
    except ValueError:
        return UnknownMessage(type="invalid-json", data=raw)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return UnknownMessage(type="invalid", data=obj)
    model = _BY_TYPE.get(obj["type"])
    if model is None:
        return UnknownMessage(type=obj["type"], data=obj.get("data"))
    try:
        return model.model_validate(obj)  # type: ignore[return-value]
    except ValueError:
        return UnknownMessage(type=obj["type"], data=obj.get("data"))


class OutputFile(BaseModel):
    """One file named in a history entry's outputs (``images``, ``gifs``, ``audio``...)."""

    model_config = ConfigDict(extra="allow")

    filename: str
    subfolder: str = ""
    type: str = "output"


class HistoryEntry(BaseModel):
    """GET /history/{id}: the truth about a finished prompt."""

    model_config = ConfigDict(extra="allow")

    prompt: list[Any] = Field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)

    @property
    def status_str(self) -> str:
        return str(self.status.get("status_str", ""))

    @property
    def completed(self) -> bool:
        return bool(self.status.get("completed", False))

    def message(self, kind: str) -> dict[str, Any] | None:
        for item in self.status.get("messages", []):
            if isinstance(item, list) and len(item) == 2 and item[0] == kind:
                data = item[1]
                return data if isinstance(data, dict) else {}
        return None


class QueueState(BaseModel):
    running: list[str]
    pending: list[str]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


class UploadedFile(BaseModel):
    name: str
    subfolder: str = ""
    type: str = "input"

    @property
    def reference(self) -> str:
        """The value LoadImage takes for this file."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


class SubmitResult(BaseModel):
    prompt_id: str
    number: float
    node_errors: dict[str, Any] = Field(default_factory=dict)
