"""Pipeline runs as clients see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from atelier.jobs.views import ArtifactView


class PipelineView(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema of the run's params.")


class PipelineList(BaseModel):
    items: list[PipelineView]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="The pipeline's parameters.")


class GenerateRequest(BaseModel):
    """POST /projects/{id}/generate: what to make; the pipeline is picked from it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000)
    character: str | None = Field(None, max_length=100, description="A name or id.")
    duration: float = Field(0, ge=0, le=600, description="Seconds; 0 means a still image.")
    style: str = Field("", max_length=2000, description="Words added to the bible's style.")
    scene_type: Literal["dialogue", "action", "emotional", "epic"] | None = None
    quality: Literal["fast_preview", "production", "ultra"] | None = None
    segments: int | Literal["auto"] = "auto"
    negative_prompt: str = Field("", max_length=4000)
    fps: int | None = Field(None, ge=1, le=60)
    width: int | None = Field(None, ge=64, le=2048)
    height: int | None = Field(None, ge=64, le=2048)
    steps: int | None = Field(None, ge=1, le=100)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    review: Literal["auto", "manual", "none"] = "auto"


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str | None = Field(
        None, max_length=64, description="The gate; default: every one waiting."
    )
    comment: str = Field("", max_length=2000)


class StepView(BaseModel):
    name: str
    kind: str
    group: str
    status: str
    depends: list[str]
    tries: int
    job_id: str | None
    jobs: list[str]
    workflow: str | None
    progress: float
    backend: str | None
    outputs: list[ArtifactView]
    scores: list[dict[str, Any]]
    error: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class SegmentStatus(BaseModel):
    total: int
    completed: int
    failed: int
    processing: int
    pending: int
    seconds_per_segment: float | None = Field(
        None, description="Mean execution time of the finished segments."
    )
    eta_seconds: float | None = Field(None, description="Estimated seconds to the last one.")
    estimated_completion: datetime | None = None


class RunView(BaseModel):
    id: str
    pipeline: str
    project_id: str | None
    status: str
    progress: float
    params: dict[str, Any]
    error: dict[str, Any] | None
    steps: list[StepView]
    segments: SegmentStatus | None
    outputs: list[ArtifactView] = Field(description="What the run made: its last steps' files.")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RunPage(BaseModel):
    items: list[RunView]
    next_cursor: str | None = None
