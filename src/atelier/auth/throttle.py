"""Per-key rate limits (counted by ``limits``) and per-owner quotas (counted in the database).

Rate: requests per minute per key, a moving window in process memory (the single-node
shape), or in Redis when ``redis_url`` is set, so that every replica counts against the
same window (the cluster shape). Quotas live in the database and hold across replicas
as they are. Quotas, checked when a request would put a job in the queue: queued jobs, and
stored output bytes. The running-jobs quota is held by the scheduler instead (an owner
at its cap waits in the queue): see ``KeyService.running_caps``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from atelier.auth.caller import Caller
from atelier.db.database import Database
from atelier.db.security import UsageRepository
from atelier.errors import QuotaExceeded, RateLimited
from atelier.job_state import JobStatus
from atelier.settings import Settings

if TYPE_CHECKING:
    import coredis  # about 25 MiB with NumPy (via pympler): imported only when Redis is set

QUOTA_RETRY_AFTER = 30  # seconds: a hint; queues drain at the speed of the GPUs

log = logging.getLogger("atelier.auth")


def rate_storage(settings: Settings) -> tuple[Storage, coredis.ConnectionPool | None]:
    """Where request counts live: this process, or the Redis every replica shares (with
    the connection pool to close at shutdown)."""
    if not settings.redis_url:
        return MemoryStorage(), None
    import coredis

    url = settings.redis_url.removeprefix("async+")
    pool = coredis.ConnectionPool.from_url(url)
    # limits documents connection_pool, though its type hint only names scalar options.
    options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(
        f"async+{url}", wrap_exceptions=True, key_prefix="atelier-rate", **options
    )
    return storage, pool


class Throttle:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.storage, self._pool = rate_storage(settings)
        self._limiter = MovingWindowRateLimiter(self.storage)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.disconnect()

    async def hit(self, caller: Caller) -> None:
        """Count one request of a keyed caller; RateLimited past its per-minute rate."""
        if caller.key_id is None:
            return
        rate = _pick(caller.limits.rate_limit, self.settings.rate_limit_per_minute)
        if not rate:
            return
        item = RateLimitItemPerMinute(rate)
        try:
            if await self._limiter.hit(item, "key", caller.key_id):
                return
            stats = await self._limiter.get_window_stats(item, "key", caller.key_id)
        except StorageError as exc:
            # Redis is away: serve the request rather than refuse everyone; quotas
            # (in the database) still hold.
            log.warning("rate limit storage unavailable (%s); not counting", exc)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"more than {rate} requests per minute with this key; retry in {retry_after} s",
            limit="requests_per_minute",
            retry_after=retry_after,
            allowed=rate,
        )

    async def check_enqueue(self, caller: Caller) -> None:
        """Before a job is queued: the owner's queued-jobs and artifact-bytes quotas."""
        owner = caller.owner
        if owner is None or caller.key_id is None:
            return
        max_queued = _pick(caller.limits.max_queued, self.settings.max_queued_per_owner)
        max_bytes = _pick(
            caller.limits.max_artifact_bytes, self.settings.max_artifact_bytes_per_owner
        )
        if not max_queued and not max_bytes:
            return
        async with self.database.transaction() as session:
            usage = UsageRepository(session)
            queued = await usage.jobs_with_status(owner, JobStatus.QUEUED) if max_queued else 0
            stored = await usage.artifact_bytes(owner) if max_bytes else 0
        if max_queued and queued >= max_queued:
            raise QuotaExceeded(
                f"{owner!r} has {queued} queued jobs; the quota is {max_queued}",
                limit="queued_jobs",
                retry_after=QUOTA_RETRY_AFTER,
                allowed=max_queued,
                current=queued,
            )
        if max_bytes and stored >= max_bytes:
            raise QuotaExceeded(
                f"{owner!r} stores {stored} bytes of outputs; the quota is {max_bytes} "
                "(delete finished jobs to free space)",
                limit="artifact_bytes",
                retry_after=3600,
                allowed=max_bytes,
                current=stored,
            )


def _pick(override: int | None, default: int) -> int:
    return default if override is None else override
