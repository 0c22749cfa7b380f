"""Response models of the gallery, models and presets endpoints: pure Pydantic, so the
SDK (atelier.client) answers with them without importing the server."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class GalleryItem(BaseModel):
    artifact_id: str
    kind: str
    content_type: str
    width: int | None
    height: int | None
    url: str
    thumbnail_url: str | None = Field(description="A small WebP; a poster frame for videos.")
    project_id: str | None
    character_id: str | None
    run_id: str
    step: str
    published: bool
    created_at: Any


class GalleryPage(BaseModel):
    items: list[GalleryItem]
    next_cursor: str | None = None


class ModelFile(BaseModel):
    name: str
    size: int | None = Field(description="Bytes, when the backend's models folder is readable.")


class BackendModels(BaseModel):
    backend: str
    status: str
    folders: dict[str, list[ModelFile]]
    workflows: list[str] = Field(description="Workflows this backend can run as it is.")


class ModelsList(BaseModel):
    items: list[BackendModels]


class PresetsList(BaseModel):
    default: str
    presets: dict[str, dict[str, Any]]
    scene_types: dict[str, dict[str, Any]]
