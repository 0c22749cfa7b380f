"""The cluster shape: the workers table, and (PostgreSQL) NOTIFY on new job events.

Workers (``atelier worker``) register and heartbeat in ``workers``; the scheduler reads
it to know their slots, capabilities, VRAM and loaded model.

PostgreSQL: NOTIFY atelier_events whenever job events are inserted.
Every replica LISTENs and then reads the table (the truth), so the notification carries
nothing but "look". One per inserting statement; PostgreSQL folds identical
notifications of one transaction into one and sends it at commit.

Revision ID: 0004_cluster
Revises: 0004_production
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_cluster"
down_revision = "0004_production"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("checkpoint", sa.String(length=512), nullable=True),
        sa.Column("system_stats", sa.JSON(), nullable=False),
        sa.Column("object_info", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION atelier_events_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('atelier_events', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
        FOR EACH STATEMENT EXECUTE FUNCTION atelier_events_notify()
        """
    )


def downgrade() -> None:
    op.drop_table("workers")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
    op.execute("DROP FUNCTION IF EXISTS atelier_events_notify()")
