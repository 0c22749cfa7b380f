"""The workflow template versions registered through the API (table workflow_versions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from atelier.db.tables import WorkflowVersionRow, utcnow


class WorkflowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def latest(self) -> list[WorkflowVersionRow]:
        """The newest version of every name (deletions included: manifest is None)."""
        newest = (
            select(WorkflowVersionRow.name, func.max(WorkflowVersionRow.version).label("v"))
            .group_by(WorkflowVersionRow.name)
            .subquery()
        )
        query = (
            select(WorkflowVersionRow)
            .join(
                newest,
                (newest.c.name == WorkflowVersionRow.name)
                & (newest.c.v == WorkflowVersionRow.version),
            )
            .order_by(WorkflowVersionRow.name)
        )
        return list((await self.session.execute(query)).scalars())

    async def get(self, name: str, version: int) -> WorkflowVersionRow | None:
        query = select(WorkflowVersionRow).where(
            WorkflowVersionRow.name == name, WorkflowVersionRow.version == version
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def history(self, name: str) -> list[WorkflowVersionRow]:
        query = (
            select(WorkflowVersionRow)
            .where(WorkflowVersionRow.name == name)
            .order_by(WorkflowVersionRow.version)
        )
        return list((await self.session.execute(query)).scalars())

    async def add(
        self, name: str, version: int, manifest: dict[str, Any] | None, author: str | None
    ) -> WorkflowVersionRow:
        """A new version; the unique (name, version) index makes a concurrent writer of
        the same version fail instead of both winning."""
        row = WorkflowVersionRow(
            name=name, version=version, manifest=manifest, author=author, created_at=utcnow()
        )
        self.session.add(row)
        await self.session.flush()
        return row
