"""jobs: the progress stage and the estimated seconds left

Revision ID: 0004_h10_progress
Revises: 0003_merge_heads
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_h10_progress"
down_revision = "0003_merge_heads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("stage", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("eta_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("eta_seconds")
        batch.drop_column("stage")
