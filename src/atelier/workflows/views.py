"""Workflow templates as clients see them: response models of /api/v1/workflows.

Pure Pydantic (no server imports), so the SDK shares them with the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WorkflowSummary(BaseModel):
    name: str
    version: int
    description: str
    outputs: list[str] = Field(description="Kinds of outputs: image, video, audio, ...")
    source: str = Field(description="Where the template comes from: builtin, folder or api")
    parameters: list[str] = Field(description="Parameter names, in the template's order")
    presets: list[str] = Field(description="Names of its parameter presets")


class WorkflowList(BaseModel):
    items: list[WorkflowSummary]


class WorkflowRequires(BaseModel):
    nodes: list[str]
    models: list[str]


class BackendFit(BaseModel):
    name: str
    status: str = Field(description="up, degraded or down")
    can_run: bool | None = Field(description="None while the backend's schema is unknown")
    missing_node_classes: list[str]
    missing_models: list[str]


class WorkflowVersion(BaseModel):
    version: int
    deleted: bool
    author: str | None
    created_at: str


class WorkflowDetail(BaseModel):
    name: str
    version: int
    description: str
    outputs: list[str]
    source: str
    parameters: list[str]
    source_format: str = Field(description="api or ui: how its graph was written")
    parameters_schema: dict[str, Any] = Field(
        alias="schema", description="The parameters as JSON Schema (the request body)"
    )
    presets: dict[str, dict[str, Any]] = Field(description="Named parameter sets")
    requires: WorkflowRequires
    backends: list[BackendFit] = Field(description="Which backends can run it now")
    schema_source: str
    versions: list[WorkflowVersion]
    graph: dict[str, Any] = Field(description="The template's ComfyUI API graph")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    def parameter(self, name: str) -> dict[str, Any]:
        """One parameter's JSON Schema (KeyError if it has none)."""
        properties: dict[str, Any] = self.parameters_schema.get("properties", {})
        schema: dict[str, Any] = properties[name]
        return schema
