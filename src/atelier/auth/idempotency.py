"""Idempotency-Key: the same key and request within the TTL return the original job.

Usable by any route that creates a job: ``await idempotency.run(owner, key, fingerprint,
create, replay)``. The key is claimed first (a row with a unique (owner, key)) together
with the id the job will have; the claimant then creates the job under that id. A
duplicate finds the claim and replays the job once it exists. A different request with the
same key is a 409 ``idempotency-key-reused``; if creating fails, the claim is released.

A claimant that dies between its claim and its job (Atelier killed mid-request) would
leave the key stuck: a duplicate that finds a claim older than ``TAKEOVER_AFTER`` with no
job creates the job itself, under the claimed id. That is safe even if the first claimant
still lives: the job id is the primary key, so only one of them can insert it, and the
other replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from atelier.db.database import Database
from atelier.db.security import IdempotencyRepository
from atelier.db.tables import IdempotencyRow, utcnow
from atelier.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidRequest, JobNotFound

T = TypeVar("T")

WAIT_FOR_CLAIM = 30.0  # seconds a duplicate waits for the first request to finish
TAKEOVER_AFTER = 10.0  # a claim this old with no job yet: its claimant is presumed dead
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
        create: Callable[[str], Awaitable[T]],
        replay: Callable[[str], Awaitable[T]],
    ) -> tuple[T, bool]:
        """(result, replayed). ``create(job_id)`` makes the job under that id;
        ``replay(job_id)`` reads it back (raising JobNotFound while it does not exist)."""
        scope = owner or ""
        check_key(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_CLAIM
        while True:
            job_id = str(uuid.uuid4())
            held, claimed = await self._claim(scope, key, digest, job_id)
            if held:
                return await self._create(scope, key, job_id, create, replay, release=True)
            if claimed is None:
                continue  # the holder gave the key up a moment ago: try again
            if claimed.fingerprint != digest:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request in the last "
                    f"{self.ttl / 3600:g} hours"
                )
            if claimed.job_id is not None:
                with contextlib.suppress(JobNotFound):
                    return await replay(claimed.job_id), True
                age = (utcnow() - claimed.created_at).total_seconds()
                if age > TAKEOVER_AFTER:
                    return await self._create(
                        scope, key, claimed.job_id, create, replay, release=False
                    )
            if loop.time() > deadline:
                raise IdempotencyKeyInUse("the first request with this key is still running")
            await asyncio.sleep(POLL)

    async def _create(
        self,
        scope: str,
        key: str,
        job_id: str,
        create: Callable[[str], Awaitable[T]],
        replay: Callable[[str], Awaitable[T]],
        *,
        release: bool,
    ) -> tuple[T, bool]:
        try:
            return await create(job_id), False
        except IntegrityError:
            # The job id is taken: the other claimant (see the module doc) made it first.
            with contextlib.suppress(JobNotFound):
                return await replay(job_id), True
            raise
        except BaseException:
            if release:
                async with self.database.transaction() as session:
                    await IdempotencyRepository(session).release(scope, key)
            raise

    async def _claim(
        self, owner: str, key: str, digest: str, job_id: str
    ) -> tuple[bool, IdempotencyRow | None]:
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
                        job_id=job_id,
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
