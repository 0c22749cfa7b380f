"""The audit log: admin actions and key changes, newest first."""

from __future__ import annotations

from typing import Any

from atelier.db.database import Database
from atelier.db.security import AuditRepository
from atelier.db.tables import AuditRow, utcnow


class AuditLog:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        row = AuditRow(
            at=utcnow(),
            actor=actor,
            action=action[:64],
            target=target[:255] if target else None,
            details=details or {},
        )
        async with self.database.transaction() as session:
            await AuditRepository(session).add(row)

    async def page(self, *, before: int | None, limit: int) -> list[AuditRow]:
        async with self.database.transaction() as session:
            return await AuditRepository(session).page(before=before, limit=limit)
