"""The job as clients see it: request and response models of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_LABELS = 32

WebhookEvent = Literal["queued", "running", "progress", "completed", "failed", "cancelled"]


class JobWebhook(BaseModel):
    """Where to POST this job's events (signed per Standard Webhooks)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048,
        pattern=r"^https?://[!-~]+$",
        description="http(s) URL of the receiver; private addresses are refused.",
    )
    events: list[WebhookEvent] = Field(
        default_factory=list, max_length=6, description="Only these events; empty means all."
    )


class Requirements(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vram_gb: float | None = Field(
        None, gt=0, le=1024, description="Run only on backends with at least this much VRAM."
    )


class JobCreate(BaseModel):
    """POST /api/v1/jobs."""

    model_config = ConfigDict(extra="forbid")

    graph: dict[str, Any] | None = Field(
        None,
        description="A ComfyUI API-format graph: {node_id: {class_type, inputs}} (a UI-format "
        "workflow is converted). Give either graph or workflow.",
    )
    workflow: str | None = Field(
        None, max_length=128, description="Run a workflow template by name (GET /api/v1/workflows)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The workflow's parameters (its JSON Schema)."
    )
    preset: str | None = Field(
        None, max_length=128, description="A named parameter set of the workflow; params win."
    )
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Yours; stored and returned as is."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="String labels to filter on.")
    requirements: Requirements = Field(default_factory=Requirements)
    webhook: JobWebhook | None = Field(
        None, description="POST this job's events here (see /api/v1/webhooks/secret)."
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        for key, item in value.items():
            if not key or len(key) > 128:
                raise ValueError("label keys are 1 to 128 characters")
            if len(item) > 512:
                raise ValueError(f"label {key!r} is longer than 512 characters")
        return value


class ArtifactView(BaseModel):
    id: str
    job_id: str | None
    node_id: str | None
    filename: str
    kind: str = Field(description="image, video, audio, text or other")
    content_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    animated: bool = False
    text: str | None = None
    url: str = Field(description="Downloads the file.")
    created_at: datetime


class JobError(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="node_error, validation_error, out_of_memory, backend_lost, "
        "interrupted, output_missing, internal"
    )
    message: str
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str | None = None
    retryable: bool = False


class AttemptView(BaseModel):
    number: int
    prompt_id: str
    backend: str
    status: str = Field(description="running, completed, failed, cancelled or lost")
    started_at: datetime
    finished_at: datetime | None
    error: JobError | None = None


class JobView(BaseModel):
    id: str
    status: str = Field(description="queued, running, completed, failed or cancelled")
    priority: int
    progress: float = Field(description="0..1 over the whole graph; 1 once outputs are stored")
    current_node: str | None
    current_node_type: str | None
    step: int | None = Field(description="The sampler's last step (kept once it ends)")
    max_steps: int | None = Field(description="Its number of steps (progress events: max_steps)")
    stage: str | None = Field(
        None,
        description="What it is doing: loading models, encoding prompt, sampling, decoding, "
        "saving, storing outputs ...",
    )
    eta_seconds: float | None = Field(
        None, description="Seconds left, from this backend's measured speed; null if unknown"
    )
    queue_position: int | None = Field(description="Jobs ahead of this one; null unless queued")
    backend: str | None
    attempt: int
    attempts: list[AttemptView]
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_seconds: float | None
    execution_seconds: float | None
    error: JobError | None
    outputs: list[ArtifactView]
    metadata: dict[str, Any]
    labels: dict[str, str]
    workflow: str | None = Field(None, description="The workflow template it ran, if any")
    workflow_version: int | None = Field(None, description="That template's version")
    params: dict[str, Any] | None = Field(
        None, description="Every parameter as resolved (the seed drawn, input artifact ids)"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Why this answer may surprise: no backend can take the job now, or "
        "Prefer: wait was cut to the server's cap (also in the Atelier-Warning header).",
    )


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None


class OutputView(ArtifactView):
    """A job's output, with the workflow that made it (the gallery's items)."""

    workflow: str | None = Field(None, description="The workflow template; null for a graph")


class OutputPage(BaseModel):
    items: list[OutputView]
    next_cursor: str | None
