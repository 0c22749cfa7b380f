"""Merge the auth and workflows branches so every later migration has one parent.

Revision ID: 0003_merge_heads
Revises: 0002_auth, 0002_workflows
"""

from __future__ import annotations

revision = "0003_merge_heads"
down_revision = ("0002_auth", "0002_workflows")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
