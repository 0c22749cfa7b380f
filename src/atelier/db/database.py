"""The Database handle: one async engine, sessions, and migrations at start.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions: a transaction that reads
then writes cannot deadlock against another writer, it waits (busy_timeout) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # Transactions take turns (see _turn), so a connection or two is all it uses;
            # more would only add threads (aiosqlite runs one per connection).
            kwargs.update(connect_args={"timeout": 30}, pool_size=2, max_overflow=0)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = asyncio.Lock() if self.is_sqlite else None
        self._writer_task: asyncio.Task[object] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self._turn(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """SQLite has one writer at a time. Waiting for the turn here, in line, beats
        SQLite's busy handler, which sleeps and retries and lets a waiter starve for
        seconds under load. PostgreSQL needs no turn."""
        if self._writer is None:
            yield
            return
        task = asyncio.current_task()
        if task is not None and task is self._writer_task:
            raise RuntimeError("a transaction was opened inside another one")
        async with self._writer:
            self._writer_task = task
            try:
                yield
            finally:
                self._writer_task = None

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe on every start)."""
        async with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                # Replicas starting together: one migrates, the others wait here.
                await connection.execute(text("SELECT pg_advisory_xact_lock(74201)"))
            await connection.run_sync(_upgrade)

    async def ping(self) -> bool:
        try:
            async with self._turn(), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


def is_disconnect(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (a restart, a network
    cut), as opposed to a query that failed."""
    if isinstance(exc, OSError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        return (
            bool(exc.connection_invalidated)
            or isinstance(exc.orig, OSError | ConnectionError)
            or "connection" in str(exc.orig).lower()
        )
    return False


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
