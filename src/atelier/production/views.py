"""Request and response models of the studio API (projects, bible, characters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ProjectStatus = Literal["draft", "active", "archived"]
LORA_PATTERN = r"^[^:]{1,250}:-?\d+(\.\d+)?$"


class ProjectDefaults(BaseModel):
    """Per-project defaults of the workflows its pipelines run."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, max_length=255)
    quality: str | None = Field(None, max_length=64, description="A preset (GET /presets).")
    width: int | None = Field(None, ge=64, le=4096)
    height: int | None = Field(None, ge=64, le=4096)
    fps: int | None = Field(None, ge=1, le=60)


def _labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 32:
        raise ValueError("at most 32 labels")
    for key, item in value.items():
        if not key or len(key) > 128 or len(item) > 512:
            raise ValueError("label keys are 1 to 128 characters, values up to 512")
    return value


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    status: Literal["draft", "active"] = "draft"
    defaults: ProjectDefaults = Field(default_factory=ProjectDefaults)
    labels: dict[str, str] = Field(default_factory=dict)
    published: bool = Field(False, description="Show every output of the project in /gallery.")

    _check_labels = field_validator("labels")(_labels)


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    status: ProjectStatus | None = None
    defaults: ProjectDefaults | None = None
    labels: dict[str, str] | None = None
    published: bool | None = None

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _labels(value)


class ProjectView(BaseModel):
    id: str
    name: str
    description: str
    status: ProjectStatus
    defaults: ProjectDefaults
    labels: dict[str, str]
    published: bool
    created_at: datetime
    updated_at: datetime


class ProjectPage(BaseModel):
    items: list[ProjectView]
    next_cursor: str | None = None


class VisualStyle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    style_prompt: str = Field("", max_length=4000)
    negative_prompt: str = Field("", max_length=4000)
    palette: list[str] = Field(default_factory=list, max_length=64)
    extra: dict[str, Any] = Field(default_factory=dict)


class Bible(BaseModel):
    """The story bible: PUT replaces it, PATCH changes the fields given."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("", max_length=200)
    description: str = Field("", max_length=20_000)
    style: VisualStyle = Field(default_factory=VisualStyle)
    world: dict[str, Any] = Field(default_factory=dict, description="The world setting, free form.")


class BiblePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    style: VisualStyle | None = None
    world: dict[str, Any] | None = None


class BibleView(Bible):
    project_id: str
    updated_at: datetime


class CharacterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^/]+$")
    description: str = Field("", max_length=10_000)
    visual_traits: dict[str, Any] = Field(default_factory=dict)
    personality: dict[str, Any] = Field(default_factory=dict)
    prompt_fragment: str = Field("", max_length=2000)
    lora: str | None = Field(None, pattern=LORA_PATTERN, description="name:weight")
    seed: int | None = Field(None, ge=0, le=2**53)


class CharacterPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[^/]+$")
    description: str | None = Field(None, max_length=10_000)
    visual_traits: dict[str, Any] | None = None
    personality: dict[str, Any] | None = None
    prompt_fragment: str | None = Field(None, max_length=2000)
    lora: str | None = Field(None, pattern=LORA_PATTERN)
    seed: int | None = Field(None, ge=0, le=2**53)


class ReferenceAdd(BaseModel):
    """A reference image: exactly one of an upload's or an earlier job output's artifact
    id, an https URL, or base64 (a data: URI too)."""

    model_config = ConfigDict(extra="forbid")

    artifact: str | None = Field(None, max_length=64)
    url: str | None = Field(None, max_length=2048)
    base64: str | None = None


class ReferenceView(BaseModel):
    artifact_id: str
    url: str
    width: int | None
    height: int | None


class CharacterView(BaseModel):
    id: str
    project_id: str
    name: str
    description: str
    visual_traits: dict[str, Any]
    personality: dict[str, Any]
    prompt_fragment: str
    lora: str | None
    seed: int | None
    references: list[ReferenceView]
    created_at: datetime
    updated_at: datetime


class CharacterList(BaseModel):
    items: list[CharacterView]
