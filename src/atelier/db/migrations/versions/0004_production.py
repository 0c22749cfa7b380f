"""the studio: projects, bibles, characters, pipeline runs and steps, gallery outputs

Revision ID: 0004_production
Revises: 0004_h10_progress
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_production"
down_revision = "0004_h10_progress"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
    )
    op.create_index("ix_projects_owner", "projects", ["owner"])
    op.create_index("ix_projects_created", "projects", ["created_at", "id"])
    op.create_table(
        "project_bibles",
        sa.Column(
            "project_id",
            sa.String(36),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("style", sa.JSON(), nullable=False),
        sa.Column("world", sa.JSON(), nullable=False),
        _when("updated_at"),
    )
    op.create_table(
        "characters",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "project_id",
            sa.String(36),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visual_traits", sa.JSON(), nullable=False),
        sa.Column("personality", sa.JSON(), nullable=False),
        sa.Column("prompt_fragment", sa.Text(), nullable=False),
        sa.Column("lora", sa.String(300), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("references", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
    )
    op.create_index("ix_characters_project_id", "characters", ["project_id"])
    op.create_index("ux_characters_project_name", "characters", ["project_id", "name"], unique=True)
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(36), nullable=True),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("finished_at", nullable=True),
    )
    op.create_index("ix_pipeline_runs_owner", "pipeline_runs", ["owner"])
    op.create_index("ix_pipeline_runs_project_id", "pipeline_runs", ["project_id"])
    op.create_index("ix_pipeline_runs_created", "pipeline_runs", ["created_at", "id"])
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_table(
        "pipeline_steps",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "run_id",
            sa.String(36),
            sa.ForeignKey("pipeline_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step_group", sa.String(32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("depends", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("job_ids", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        _when("updated_at"),
    )
    op.create_index("ix_pipeline_steps_run_id", "pipeline_steps", ["run_id"])
    op.create_index("ix_pipeline_steps_job_id", "pipeline_steps", ["job_id"])
    op.create_index("ux_pipeline_steps_run_name", "pipeline_steps", ["run_id", "name"], unique=True)
    op.create_table(
        "studio_outputs",
        sa.Column("artifact_id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(36), nullable=True),
        sa.Column("character_id", sa.String(36), nullable=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("thumbnail_id", sa.String(36), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        _when("created_at"),
    )
    op.create_index("ix_studio_outputs_owner", "studio_outputs", ["owner"])
    op.create_index("ix_studio_outputs_project_id", "studio_outputs", ["project_id"])
    op.create_index("ix_studio_outputs_run_id", "studio_outputs", ["run_id"])
    op.create_index("ix_studio_outputs_created", "studio_outputs", ["created_at", "artifact_id"])


def downgrade() -> None:
    for table in ("studio_outputs", "pipeline_steps", "pipeline_runs", "characters"):
        op.drop_table(table)
    op.drop_table("project_bibles")
    op.drop_table("projects")
