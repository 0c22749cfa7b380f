"""API keys: made, listed and revoked here (by the admin API and by the CLI alike).

A key is ``atk_`` plus 32 random bytes (URL-safe base64); only its SHA-256 is stored,
and the key itself is shown once, when it is made. The key's ``name`` is its owner: the
jobs, artifacts and webhooks it creates belong to that name, so several keys with the
same name (a new one made before the old one is revoked) share everything.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable

from atelier.auth.audit import AuditLog
from atelier.auth.caller import OWNER_NAME, SCOPES, Caller, Limits
from atelier.db.database import Database
from atelier.db.security import KeyRepository
from atelier.db.tables import ApiKeyRow, utcnow
from atelier.errors import KeyNotFound, ValidationFailed

PREFIX = "atk_"
TOUCH_EVERY = 60.0  # seconds between last_used_at updates of one key
# Seconds a key, once looked up, is trusted without asking the database again. A key
# revoked through this server (API) stops at once; one revoked by another process (the
# CLI, another replica) stops within this.
CACHE_SECONDS = 5.0
CACHE_SIZE = 4096


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_new_key(name: str, scopes: Iterable[str]) -> list[str]:
    if not OWNER_NAME.match(name):
        raise ValidationFailed(
            "name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            errors=[{"field": "name", "reason": "not a valid name"}],
        )
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise ValidationFailed(
            f"scopes must be some of {', '.join(SCOPES)}",
            errors=[{"field": "scopes", "reason": f"unknown or empty: {unknown}"}],
        )
    return wanted


class KeyService:
    def __init__(self, database: Database, audit: AuditLog) -> None:
        self.database = database
        self.audit = audit
        self._keys_exist = False  # once True it stays True (revoked keys count)
        self._keys_checked_at = float("-inf")
        self._touched: dict[str, float] = {}
        self._callers: dict[str, tuple[Caller, float]] = {}  # key hash -> caller, until
        # Per-owner running-jobs caps from key overrides; the dispatcher reads this dict.
        self.running_caps: dict[str | None, int] = {}

    async def create(
        self,
        name: str,
        scopes: Iterable[str],
        limits: Limits | None = None,
        *,
        actor: str | None,
    ) -> tuple[ApiKeyRow, str]:
        """Make a key; returns the row and the key (the only time it is seen)."""
        wanted = check_new_key(name, scopes)
        limits = limits or Limits()
        key = PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=str(uuid.uuid4()),
            name=name,
            prefix=key[: len(PREFIX) + 6],
            key_hash=hash_key(key),
            scopes=wanted,
            rate_limit=limits.rate_limit,
            max_queued=limits.max_queued,
            max_running=limits.max_running,
            max_artifact_bytes=limits.max_artifact_bytes,
            created_at=utcnow(),
        )
        async with self.database.transaction() as session:
            await KeyRepository(session).add(row)
        self._keys_exist = True
        await self.audit.record(
            "key.create",
            actor=actor,
            target=row.id,
            details={"name": name, "scopes": wanted, "prefix": row.prefix},
        )
        await self.refresh_caps()
        return row, key

    async def revoke(self, key_id: str, *, actor: str | None) -> ApiKeyRow:
        async with self.database.transaction() as session:
            keys = KeyRepository(session)
            row = await keys.get(key_id)
            if row is None:
                raise KeyNotFound(f"no API key {key_id!r}")
            await keys.revoke(key_id, utcnow())
            row = await keys.get(key_id)
        assert row is not None
        self._callers.clear()  # revoked from the next request on
        await self.audit.record(
            "key.revoke", actor=actor, target=key_id, details={"name": row.name}
        )
        await self.refresh_caps()
        return row

    async def find(self, *, include_revoked: bool = False) -> list[ApiKeyRow]:
        async with self.database.transaction() as session:
            return await KeyRepository(session).find(include_revoked=include_revoked)

    async def keys_exist(self) -> bool:
        # While open, look again at most once a second: a key made with the CLI (another
        # process) closes the server within that second, without a query per request.
        # The check is stamped before it runs: the requests that arrive while it does
        # use the answer at hand instead of each asking the database again.
        now = time.monotonic()
        if not self._keys_exist and now - self._keys_checked_at >= 1.0:
            self._keys_checked_at = now
            async with self.database.transaction() as session:
                self._keys_exist = await KeyRepository(session).any_exist()
        return self._keys_exist

    async def authenticate(self, key: str) -> Caller | None:
        """The caller a key stands for; None when it is unknown or revoked."""
        if not key.startswith(PREFIX) or len(key) > 128:
            return None
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._callers.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self.database.transaction() as session:
            keys = KeyRepository(session)
            row = await keys.by_hash(digest)
            if row is None or row.revoked_at is not None:
                self._callers.pop(digest, None)
                return None
            if now - self._touched.get(row.id, -TOUCH_EVERY) >= TOUCH_EVERY:
                self._touched[row.id] = now
                await keys.touch(row.id, utcnow())
        caller = Caller(
            owner=row.name,
            scopes=frozenset(row.scopes),
            key_id=row.id,
            limits=Limits(row.rate_limit, row.max_queued, row.max_running, row.max_artifact_bytes),
        )
        if len(self._callers) >= CACHE_SIZE:
            self._callers.clear()
        self._callers[digest] = (caller, now + CACHE_SECONDS)
        return caller

    async def refresh_caps(self) -> None:
        async with self.database.transaction() as session:
            caps = await KeyRepository(session).running_caps()
        self.running_caps.clear()
        self.running_caps.update(caps)


def describe(row: ApiKeyRow) -> dict[str, object]:
    """A key as the API and the CLI show it: never the key or its hash."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "scopes": list(row.scopes),
        "rate_limit": row.rate_limit,
        "max_queued": row.max_queued,
        "max_running": row.max_running,
        "max_artifact_bytes": row.max_artifact_bytes,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }
