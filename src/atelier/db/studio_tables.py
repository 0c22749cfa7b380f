"""The studio's tables (migration 0004_production): projects, their bible and
characters, pipeline runs and their steps, and the outputs the gallery shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from atelier.db.tables import Base, UtcDateTime


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # draft, active, archived
    defaults: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_projects_created", "created_at", "id"),)


class BibleRow(Base):
    """The one story bible of a project."""

    __tablename__ = "project_bibles"

    project_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    style: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    world: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime]


class CharacterRow(Base):
    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    visual_traits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    personality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt_fragment: Mapped[str] = mapped_column(Text, default="")
    lora: Mapped[str | None] = mapped_column(String(300), default=None)
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)  # artifact ids
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ux_characters_project_name", "project_id", "name", unique=True),)


class RunRow(Base):
    """A pipeline run: a persisted DAG of steps (``StepRow``)."""

    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    project_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(24))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    __table_args__ = (
        Index("ix_pipeline_runs_created", "created_at", "id"),
        Index("ix_pipeline_runs_status", "status"),
    )


class StepRow(Base):
    """One step of a run: a workflow job, a media step (join, thumbnail) or a gate."""

    __tablename__ = "pipeline_steps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # job, join, gate
    group: Mapped[str] = mapped_column("step_group", String(32), default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    depends: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(24))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    job_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # every try's job
    outputs: Mapped[list[str]] = mapped_column(JSON, default=list)  # artifact ids
    scores: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ux_pipeline_steps_run_name", "run_id", "name", unique=True),)


class StudioOutputRow(Base):
    """An output of a run's step, with what it shows: what the gallery lists."""

    __tablename__ = "studio_outputs"

    artifact_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    project_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    character_id: Mapped[str | None] = mapped_column(String(36), default=None)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    step: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    thumbnail_id: Mapped[str | None] = mapped_column(String(36), default=None)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_studio_outputs_created", "created_at", "artifact_id"),)
