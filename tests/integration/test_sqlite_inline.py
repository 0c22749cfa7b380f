"""SQLite runs on the event loop's thread (db/sqlite_inline.py). A write lock held by
another process is waited for with the loop still serving, and a lock held for longer
than the lock timeout fails the transaction instead of hanging it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from atelier.db import sqlite_inline
from atelier.db.database import Database
from atelier.db.webhooks import StateRepository


async def _database(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await database.migrate()
    return database


def _hold_write_lock(tmp_path: Path) -> sqlite3.Connection:
    """Another process's writer, as far as SQLite can tell: a connection of its own."""
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_lock_held_elsewhere_is_waited_for_while_the_loop_serves(
    tmp_path: Path,
) -> None:
    database = await _database(tmp_path)
    other = _hold_write_lock(tmp_path)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> None:
        async with database.transaction() as session:
            await StateRepository(session).set("probe", 7)

    ticking = asyncio.create_task(tick())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()  # waiting for the other writer
    assert ticks >= 5  # and the loop went on meanwhile (a blocked loop would count 0)
    other.execute("COMMIT")
    await asyncio.wait_for(writing, 5)
    ticking.cancel()
    async with database.transaction() as session:
        assert await StateRepository(session).get("probe") == 7
    other.close()
    await database.close()


async def test_a_lock_held_too_long_fails_the_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = await _database(tmp_path)
    monkeypatch.setattr(sqlite_inline, "LOCK_TIMEOUT", 0.2)
    other = _hold_write_lock(tmp_path)
    with pytest.raises(OperationalError, match="locked"):
        async with database.transaction() as session:
            await StateRepository(session).set("probe", 1)
    other.execute("ROLLBACK")
    async with database.transaction() as session:  # the pool's connection still works
        await StateRepository(session).set("probe", 2)
        assert await StateRepository(session).get("probe") == 2
    other.close()
    await database.close()
