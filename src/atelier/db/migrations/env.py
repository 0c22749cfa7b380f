"""Alembic environment: Atelier always hands in a live connection (see Database.migrate)."""

from __future__ import annotations

from alembic import context

from atelier.db.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through atelier.db.database.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
