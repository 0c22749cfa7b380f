"""Which errors mean "the database is away" (wait and go on) and which are real faults."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError

from atelier.db.database import unreachable


def _chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


def test_connection_trouble_is_unreachable() -> None:
    assert unreachable(ConnectionRefusedError(111, "Connection refused"))
    assert unreachable(ConnectionResetError())
    assert unreachable(DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True))
    starting = asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
    assert unreachable(_chained(DBAPIError("SELECT 1", {}, Exception("x")), starting))
    closed = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    assert unreachable(_chained(RuntimeError("wrapped"), closed))


def test_statement_and_local_faults_are_not() -> None:
    assert not unreachable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not unreachable(FileNotFoundError(2, "No such file"))
    assert not unreachable(OSError(28, "No space left on device"))
    assert not unreachable(ValueError("bad"))
