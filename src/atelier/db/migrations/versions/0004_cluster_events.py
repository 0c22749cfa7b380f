"""PostgreSQL: NOTIFY atelier_events whenever job events are inserted.

Every replica LISTENs and then reads the table (the truth), so the notification carries
nothing but "look". One per inserting statement; PostgreSQL folds identical
notifications of one transaction into one and sends it at commit.

Revision ID: 0004_cluster_events
Revises: 0003_merge_heads
"""

from __future__ import annotations

from alembic import op

revision = "0004_cluster_events"
down_revision = "0003_merge_heads"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
    op.execute("DROP FUNCTION IF EXISTS atelier_events_notify()")
