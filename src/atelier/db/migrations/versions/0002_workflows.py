"""workflow template versions

Revision ID: 0002_workflows
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_workflows"
down_revision = "0001"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflow_versions",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=True),
        sa.Column("author", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_workflow_versions_name_version", "workflow_versions", ["name", "version"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_workflow_versions_name_version", table_name="workflow_versions")
    op.drop_table("workflow_versions")
