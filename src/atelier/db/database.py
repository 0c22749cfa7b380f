"""The Database handle: one async engine, sessions, and migrations at start.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions: a transaction that reads
then writes cannot deadlock against another writer, it waits (busy_timeout) instead.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from atelier.db.revisions import at_head
from atelier.db.sqlite_inline import InlineConnection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # Transactions take turns (see _turn), so a connection or two is all it uses.
            # SQLite runs on the event loop's thread (sqlite_inline.py): aiosqlite's
            # thread hops cost more than the statements.
            path = make_url(url).database or ":memory:"
            kwargs.update(
                async_creator=lambda: InlineConnection.open(path), pool_size=2, max_overflow=0
            )
        else:
            # Connections beyond pool_size are closed when handed back, and opening one
            # (asyncpg's handshake and type set-up) costs far more CPU than a request:
            # under steady load past the pool they opened and closed for every request.
            # A pool this size with a small overflow keeps them open.
            kwargs.update(pool_size=20, max_overflow=10, pool_pre_ping=True)
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


def unreachable(exc: BaseException) -> bool:
    """Whether an error means the database could not be reached (down, restarting, the
    connection cut), as opposed to a fault of the statement: worth waiting and retrying."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OSError) and current.errno in _NETWORK_ERRNOS:
            return True
        if isinstance(
            current,
            ConnectionError
            | TimeoutError
            | asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            # Class 57: shutting down, starting up, crash recovery.
            | asyncpg.exceptions.OperatorInterventionError,
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


_NETWORK_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ECONNREFUSED}


async def wait_until_reachable(database: Database, *, poll: float = 0.5) -> bool:
    """Returns once a ``SELECT 1`` goes through: True if it had to wait for that."""
    waited = False
    while True:
        if await database.ping():
            return waited
        waited = True
        await asyncio.sleep(poll)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if at_head(connection, MIGRATIONS / "versions"):
        return  # nothing to do, and Alembic (10 MiB of imports) stays unloaded
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, decides when a transaction begins (the connection
        # opens with isolation_level=None). No busy timeout: a lock held by another
        # process is waited for without blocking the loop (sqlite_inline.py).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
