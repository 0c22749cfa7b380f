"""Idempotency-Key: the same key and request within the TTL return the original job.

Usable by any route that creates a job: ``await idempotency.run(owner, key, fingerprint,
create, replay)``. The key is claimed first (a row with a unique (owner, key)); the
claimant creates the job and records its id. A concurrent duplicate finds the claim and
waits for the id, so it gets the same job. A different request with the same key is a
409 ``idempotency-key-reused``; if creating fails, the claim is released.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from atelier.db.database import Database
from atelier.db.security import IdempotencyRepository
from atelier.db.tables import IdempotencyRow, utcnow
from atelier.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidRequest

T = TypeVar("T")

WAIT_FOR_CLAIM = 30.0  # seconds a duplicate waits for the first request to finish
POLL = 0.05
MAX_KEY = 255


def fingerprint(route: str, body: Any) -> str:
    """A stable digest of the route and the request body (key order does not matter)."""
    canonical = json.dumps([route, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters",
            field="Idempotency-Key",
        )
    return key


class IdempotencyKeys:
    def __init__(self, database: Database, *, ttl: float) -> None:
        self.database = database
        self.ttl = ttl

    async def run(
        self,
        owner: str | None,
        key: str,
        digest: str,
        create: Callable[[], Awaitable[T]],
        replay: Callable[[str], Awaitable[T]],
        job_id_of: Callable[[T], str],
    ) -> tuple[T, bool]:
        """(result, replayed). ``create`` makes the job; ``replay(job_id)`` reads it back."""
        scope = owner or ""
        check_key(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_CLAIM
        while True:
            held, claimed = await self._claim(scope, key, digest)
            if held:
                break
            if claimed is None:
                continue  # the holder gave the key up a moment ago: try again
            if claimed.fingerprint != digest:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request in the last "
                    f"{self.ttl / 3600:g} hours"
                )
            if claimed.job_id is not None:
                return await replay(claimed.job_id), True
            if loop.time() > deadline:
                raise IdempotencyKeyInUse("the first request with this key is still running")
            await asyncio.sleep(POLL)
        try:
            result = await create()
        except BaseException:
            async with self.database.transaction() as session:
                await IdempotencyRepository(session).release(scope, key)
            raise
        async with self.database.transaction() as session:
            await IdempotencyRepository(session).set_job(scope, key, job_id_of(result))
        return result, False

    async def _claim(self, owner: str, key: str, digest: str) -> tuple[bool, IdempotencyRow | None]:
        """(True, None) if this request now holds the key; else (False, the holder)."""
        now = utcnow()
        try:
            async with self.database.transaction() as session:
                repository = IdempotencyRepository(session)
                existing = await repository.get(owner, key)
                if existing is not None and existing.expires_at > now:
                    return False, existing
                if existing is not None:
                    await repository.release(owner, key)
                    await session.flush()
                await repository.claim(
                    IdempotencyRow(
                        owner=owner,
                        key=key,
                        fingerprint=digest,
                        created_at=now,
                        expires_at=now + timedelta(seconds=self.ttl),
                    )
                )
        except IntegrityError:
            async with self.database.transaction() as session:
                return False, await IdempotencyRepository(session).get(owner, key)
        return True, None

    async def purge(self) -> None:
        async with self.database.transaction() as session:
            await IdempotencyRepository(session).purge_expired(utcnow())
