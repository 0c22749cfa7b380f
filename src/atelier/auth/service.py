"""Everything the API needs to know who calls and what they may do, built for the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from atelier.auth.audit import AuditLog
from atelier.auth.idempotency import IdempotencyKeys
from atelier.auth.keys import KeyService
from atelier.auth.signing import UrlSigner, load_secret
from atelier.auth.throttle import Throttle
from atelier.db.database import Database
from atelier.settings import Settings

log = logging.getLogger("atelier.auth")

REFRESH = 30.0  # seconds: keys changed by the CLI reach the scheduler's caps this fast


@dataclass
class Security:
    settings: Settings
    keys: KeyService
    audit: AuditLog
    throttle: Throttle
    signer: UrlSigner
    idempotency: IdempotencyKeys
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        await self.keys.refresh_caps()
        mode = self.settings.auth_mode
        if mode == "open":
            log.warning("auth_mode=open: API keys are optional; anyone who can connect may act")
        elif mode == "auto" and not await self.keys.keys_exist():
            log.warning(
                "no API key exists: the API is open to loopback clients only; create a key "
                "(atelier keys create --name NAME --scope admin) to require keys"
            )
        self._task = asyncio.create_task(self._housekeeping(), name="auth-housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.throttle.close()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                await self.keys.refresh_caps()
                await self.idempotency.purge()
            except Exception:
                log.exception("auth housekeeping failed; retrying")


def build_security(settings: Settings, database: Database) -> Security:
    audit = AuditLog(database)
    return Security(
        settings=settings,
        keys=KeyService(database, audit),
        audit=audit,
        throttle=Throttle(settings, database),
        signer=UrlSigner(
            load_secret(settings.signing_secret, settings.data_dir), ttl=settings.artifact_url_ttl
        ),
        idempotency=IdempotencyKeys(database, ttl=settings.idempotency_ttl),
    )
