"""The delivery worker: sends due deliveries from the ledger, signs them, retries them.

Each attempt is signed per Standard Webhooks (``webhook-id`` = the delivery id, the same
on every attempt, ``webhook-timestamp``, ``webhook-signature``) with the subscription's
secret, or the owner's secret for per-job webhooks. The target is checked against the
address rules on every attempt and the request goes to the address that check resolved
(no second DNS answer can point it elsewhere). A 2xx answer is success; anything else is
retried after ``webhook_retry_base * 2**(attempt-1)`` seconds (at most
``webhook_retry_max``, with jitter) until ``webhook_retry_window`` has passed since the
event. The ledger is the queue: pending rows survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import random
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from atelier import __version__
from atelier.db.database import Database
from atelier.db.tables import WebhookDeliveryRow, utcnow
from atelier.db.webhooks import DeliveryRepository, WebhookRepository
from atelier.errors import AtelierError
from atelier.net import Address, check_url
from atelier.settings import Settings
from atelier.webhooks.service import ensure_owner_secret

log = logging.getLogger("atelier.webhooks")

BATCH = 32
CONCURRENCY = 16
HISTORY = 50  # attempts kept per delivery
POLL = 5.0


class DeliveryWorker:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._streams: dict[str, tuple[str, str]] = {}  # in flight: (webhook, job)
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._http = httpx.AsyncClient(
            follow_redirects=False,
            timeout=settings.webhook_timeout,
            headers={"user-agent": f"atelier-webhooks/{__version__}"},
        )

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhook-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        await self._http.aclose()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            timeout = POLL
            try:
                timeout = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery round failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, timeout))

    async def _round(self) -> float:
        """Start the due deliveries; returns seconds until the next one is due."""
        now = utcnow()
        free = CONCURRENCY - len(self._in_flight)
        async with self.database.transaction() as session:
            repository = DeliveryRepository(session)
            due = await repository.due(now, limit=free, skip=set(self._in_flight))
            next_due = await repository.next_due()
        started = 0
        for delivery in due:
            # One at a time per webhook and job, oldest first: in order unless retried.
            stream = (delivery.webhook_id, delivery.job_id)
            if stream in self._streams.values():
                continue
            task = asyncio.create_task(self._attempt(delivery), name=f"webhook-{delivery.id}")
            self._in_flight[delivery.id] = task
            self._streams[delivery.id] = stream
            task.add_done_callback(functools.partial(self._done, delivery.id))
            started += 1
        if len(due) >= free > 0 and started:
            return 0.0
        if next_due is None:
            return POLL
        return min(POLL, max(0.0, (next_due - utcnow()).total_seconds()))

    def _done(self, delivery_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self._streams.pop(delivery_id, None)
        self._wake.set()

    async def _attempt(self, delivery: WebhookDeliveryRow) -> None:
        async with self._slots:
            started = time.monotonic()
            status_code: int | None = None
            error: str | None = None
            try:
                secret = await self._secret(delivery)
                if secret is None:
                    error = "the webhook was deleted"
                else:
                    status_code = await self._send(delivery, secret)
                    if not 200 <= status_code < 300:
                        error = f"receiver answered {status_code}"
            except AtelierError as exc:
                error = exc.detail
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
            except Exception as exc:  # a bug must not stop the worker
                log.exception("webhook delivery %s failed", delivery.id)
                error = f"internal error ({type(exc).__name__})"
            await self._record(delivery.id, status_code, error, time.monotonic() - started)

    async def _secret(self, delivery: WebhookDeliveryRow) -> str | None:
        async with self.database.transaction() as session:
            hook = await WebhookRepository(session).get(delivery.webhook_id)
        if hook is None:
            return None
        return hook.secret or await ensure_owner_secret(self.database, hook.owner)

    async def _send(self, delivery: WebhookDeliveryRow, secret: str) -> int:
        addresses = await asyncio.wait_for(
            check_url(delivery.url, field="url", allowlist=self.settings.url_allowlist), 10
        )
        body = json.dumps(delivery.payload, separators=(",", ":"))
        timestamp = datetime.now().astimezone()
        signature = Webhook(secret).sign(delivery.id, timestamp, body)
        url, host, extensions = _pinned(delivery.url, addresses[0])
        headers = {
            "content-type": "application/json",
            "host": host,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
        }
        response = await self._http.post(
            url, content=body.encode(), headers=headers, extensions=extensions
        )
        return response.status_code

    async def _record(
        self, delivery_id: str, status_code: int | None, error: str | None, seconds: float
    ) -> None:
        now = utcnow()
        async with self.database.transaction() as session:
            row = await DeliveryRepository(session).get(delivery_id)
            if row is None:
                return
            row.attempts += 1
            entry = {
                "at": now.isoformat(),
                "status_code": status_code,
                "error": error,
                "seconds": round(seconds, 3),
            }
            row.history = [*row.history, entry][-HISTORY:]
            row.last_status_code = status_code
            row.last_error = error[:512] if error else None
            if error is None:
                row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
            elif now - row.created_at >= timedelta(seconds=self.settings.webhook_retry_window):
                row.status, row.next_attempt_at = "failed", None
            else:
                row.next_attempt_at = now + timedelta(seconds=self.backoff(row.attempts))
        if error is not None:
            log.info("webhook delivery %s: %s (attempt %d)", delivery_id, error, row.attempts)

    def backoff(self, attempts: int) -> float:
        base: float = self.settings.webhook_retry_base * 2.0 ** min(attempts - 1, 30)
        delay = min(base, self.settings.webhook_retry_max)
        return delay * random.uniform(0.8, 1.0)


def _pinned(url: str, address: Address) -> tuple[str, str, dict[str, object]]:
    """The URL with its host replaced by the checked address, the Host header, and the
    TLS server name to use (so the certificate is still checked against the name)."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    host_header = parts.netloc.rsplit("@", 1)[-1]
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    extensions: dict[str, object] = {}
    if parts.scheme == "https":
        extensions["sni_hostname"] = hostname
    return (
        urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header,
        extensions,
    )
