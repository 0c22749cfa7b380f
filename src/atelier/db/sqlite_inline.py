"""SQLite on the event loop's own thread, in the shape SQLAlchemy's aiosqlite dialect
drives.

aiosqlite runs every call (open a cursor, execute, fetch, close) on a thread of its own
and hands each result back through the event loop: four thread hops a statement, each
costing more CPU than the statement (SQLite answers from its page cache in
microseconds). This connection makes the same calls on the caller's thread, so a
statement costs no hop at all.

It never blocks the loop waiting for a lock. SQLite's busy timeout is 0: a statement that
finds the database locked by another process (an `atelier keys create` while the server
runs, a second server starting on the same file) fails at once with SQLITE_BUSY, and
the statement is retried after an ``asyncio.sleep``, up to ``LOCK_TIMEOUT`` seconds, as
SQLite's own busy handler would retry it while sleeping on the thread. Writers inside
one process already take turns (``Database._turn``). A statement that failed with
SQLITE_BUSY did nothing, so running it again is safe, BEGIN and COMMIT included.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

LOCK_TIMEOUT = 30.0  # seconds a statement waits for another process's lock
_FIRST_WAIT, _LONGEST_WAIT = 0.002, 0.05


def _locked(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


async def _retrying(call: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + LOCK_TIMEOUT
    wait = _FIRST_WAIT
    while True:
        try:
            return call()
        except sqlite3.OperationalError as error:
            if not _locked(error) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(wait)
        wait = min(wait * 2, _LONGEST_WAIT)


class InlineCursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await _retrying(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        rows = list(parameters)  # a retry must see every row again
        await _retrying(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> Sequence[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _RunNow:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's dialect uses directly
    to set the isolation level: the function runs at once and its future is resolved."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class InlineConnection:
    """What SQLAlchemy's aiosqlite dialect uses of an ``aiosqlite.Connection``."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @classmethod
    async def open(cls, path: str) -> InlineConnection:
        # isolation_level=None: SQLAlchemy, not the driver, says when a transaction
        # begins (database.py sends BEGIN IMMEDIATE). check_same_thread=False: the pool
        # may close a connection from another thread at interpreter exit.
        connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        return cls(connection)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        await _retrying(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now (SQLAlchemy's terminate); a second call does nothing."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()
