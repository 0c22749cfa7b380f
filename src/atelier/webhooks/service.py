"""Subscriptions, per-job webhooks, and the consumer that turns job events into deliveries.

The consumer follows the ``job_events`` table (the bus only wakes it), from a cursor kept
in ``service_state``, so no event is missed across a lag or a restart. Each matching
webhook gets one delivery row per event (unique per webhook and event); the payload is
the job as GET returns it (outputs' URLs signed), wrapped as Standard Webhooks suggests:
``{"type": "job.completed", "timestamp": ..., "data": {job}}``. Progress is thinned to at
most one per ``webhook_progress_interval`` per job and webhook.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from atelier import events
from atelier.db.database import Database
from atelier.db.repositories import EventRepository, JobRepository
from atelier.db.tables import (
    EventRow,
    JobRow,
    WebhookDeliveryRow,
    WebhookRow,
    WebhookSecretRow,
    utcnow,
)
from atelier.db.unit import UnitOfWork
from atelier.db.webhooks import (
    DeliveryRepository,
    EventFeed,
    StateRepository,
    WebhookRepository,
)
from atelier.errors import (
    DeliveryNotFound,
    InvalidRequest,
    QuotaExceeded,
    WebhookNotFound,
)
from atelier.events import EventBus
from atelier.jobs.service import JobsService
from atelier.jobs.views import JobCreate
from atelier.net import UrlNotAllowed, check_url
from atelier.settings import Settings
from atelier.webhooks.views import (
    DeliveryPage,
    DeliveryView,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookView,
    delivery_view,
)

log = logging.getLogger("atelier.webhooks")

CURSOR = "webhooks.event_cursor"
PAGE = 500
GRACE = timedelta(seconds=10)  # events this young may still be joined by older ids
POLL = 5.0
SAVE_EVERY = 5.0  # seconds between writes of the kept cursor
BATCH_WINDOW = 0.2  # seconds; webhook receivers do not need sub-second latency
# Job event type -> webhook event type; others (output, cancel_requested) are not sent.
EVENT_TYPES = {
    events.QUEUED: "queued",
    events.REQUEUED: "queued",
    events.RUNNING: "running",
    events.PROGRESS: "progress",
    events.COMPLETED: "completed",
    events.FAILED: "failed",
    events.CANCELLED: "cancelled",
}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def check_target(url: str, settings: Settings, *, field: str) -> None:
    try:
        await asyncio.wait_for(
            check_url(url, field=field, allowlist=settings.url_allowlist), timeout=10
        )
    except TimeoutError as exc:
        raise UrlNotAllowed("resolving the host took too long", field=field) from exc
    except (UnicodeError, ValueError) as exc:
        raise UrlNotAllowed("the URL is not valid", field=field) from exc


async def ensure_owner_secret(database: Database, owner: str | None) -> str:
    """The per-owner secret of per-job webhooks ("" is the anonymous owner)."""
    name = owner or ""
    async with database.transaction() as session:
        row = await WebhookRepository(session).owner_secret(name)
    if row is not None:
        return row.secret
    try:
        async with database.transaction() as session:
            row = WebhookSecretRow(owner=name, secret=new_secret(), created_at=utcnow())
            await WebhookRepository(session).add_owner_secret(row)
            return row.secret
    except IntegrityError:  # made by a concurrent request
        async with database.transaction() as session:
            existing = await WebhookRepository(session).owner_secret(name)
        assert existing is not None
        return existing.secret


def _view(row: WebhookRow) -> WebhookView:
    return WebhookView(
        id=row.id,
        url=row.url,
        events=list(row.events),
        job_id=row.job_id,
        created_at=row.created_at,
    )


class JobWebhooks:
    """The per-job webhook of a submit (``JobCreate.webhook``): checked before the job's
    transaction, stored inside it. The jobs service runs it as a submit extension."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def check(self, request: JobCreate, owner: str | None) -> None:
        if request.webhook is not None:
            await check_target(request.webhook.url, self.settings, field="webhook.url")

    async def store(self, unit: UnitOfWork, job: JobRow, request: JobCreate) -> None:
        if request.webhook is None:
            return
        await WebhookRepository(unit.session).add(
            WebhookRow(
                id=str(uuid.uuid4()),
                owner=job.owner,
                job_id=job.id,
                url=request.webhook.url,
                events=sorted(set(request.webhook.events)),
                secret=None,
                created_at=job.created_at,
            )
        )


class WebhookService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        bus: EventBus,
        jobs: JobsService,
        *,
        wake_delivery: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.database = database
        self.bus = bus
        self.jobs = jobs
        self.wake_delivery = wake_delivery
        self._task: asyncio.Task[None] | None = None
        # Events read past the kept cursor, with when each happened.
        self._seen: dict[int, datetime] = {}
        self._read = 0  # the highest event id read
        self._settled = 0  # the kept cursor: every event up to it is handled
        self._saved_at = 0.0  # when it was last written
        self._last_progress: dict[tuple[str, str], datetime] = {}

    # Subscriptions (API).

    async def create(self, owner: str | None, body: WebhookCreate) -> WebhookCreated:
        await check_target(body.url, self.settings, field="url")
        row = WebhookRow(
            id=str(uuid.uuid4()),
            owner=owner,
            job_id=None,
            url=body.url,
            events=sorted(set(body.events)),
            secret=new_secret(),
            created_at=utcnow(),
        )
        async with self.database.transaction() as session:
            hooks = WebhookRepository(session)
            if await hooks.count_standing(owner) >= self.settings.max_webhooks_per_owner:
                raise QuotaExceeded(
                    f"at most {self.settings.max_webhooks_per_owner} webhooks per owner",
                    limit="webhooks",
                    retry_after=3600,
                )
            await hooks.add(row)
        assert row.secret is not None
        return WebhookCreated(**_view(row).model_dump(), secret=row.secret)

    async def find(self, visible_owner: str | None) -> WebhookList:
        async with self.database.transaction() as session:
            rows = await WebhookRepository(session).standing(owner=visible_owner)
        return WebhookList(items=[_view(r) for r in rows])

    async def get(self, webhook_id: str, visible_owner: str | None) -> WebhookView:
        async with self.database.transaction() as session:
            row = await WebhookRepository(session).get(webhook_id, owner=visible_owner)
        if row is None:
            raise WebhookNotFound(f"no webhook {webhook_id!r}")
        return _view(row)

    async def delete(self, webhook_id: str, visible_owner: str | None) -> None:
        async with self.database.transaction() as session:
            hooks = WebhookRepository(session)
            if await hooks.get(webhook_id, owner=visible_owner) is None:
                raise WebhookNotFound(f"no webhook {webhook_id!r}")
            await hooks.delete(webhook_id)

    async def owner_secret(self, owner: str | None) -> str:
        """The secret that signs per-job webhooks of ``owner``; made on first use."""
        return await ensure_owner_secret(self.database, owner)

    # Deliveries (API).

    async def deliveries(
        self,
        visible_owner: str | None,
        *,
        job_id: str | None,
        status: str | None,
        cursor: str | None,
        limit: int,
    ) -> DeliveryPage:
        before = _decode_cursor(cursor) if cursor else None
        async with self.database.transaction() as session:
            rows = await DeliveryRepository(session).find(
                owner=visible_owner, job_id=job_id, status=status, before=before, limit=limit + 1
            )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = f"{page[-1].created_at.isoformat()}|{page[-1].id}" if more else None
        return DeliveryPage(items=[delivery_view(r) for r in page], next_cursor=next_cursor)

    async def redeliver(self, delivery_id: str, visible_owner: str | None) -> DeliveryView:
        async with self.database.transaction() as session:
            row = await DeliveryRepository(session).get(delivery_id, owner=visible_owner)
            if row is None:
                raise DeliveryNotFound(f"no delivery {delivery_id!r}")
            row.status = "pending"
            row.next_attempt_at = utcnow()
            row.delivered_at = None
        self.wake_delivery()
        return delivery_view(row)

    # Per-job webhooks (a JobsService submit extension).

    # The consumer.

    async def start(self) -> None:
        async with self.database.transaction() as session:
            state = StateRepository(session)
            cursor = await state.get(CURSOR)
            if cursor is None:
                cursor = await EventRepository(session).last_id()
                await state.set(CURSOR, cursor)
        self._settled = self._read = cursor
        self._task = asyncio.create_task(self._consume(), name="webhook-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _consume(self) -> None:
        async with self.bus.subscribe() as subscription:
            while True:
                try:
                    while await self.process_once() >= PAGE:
                        pass
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook event round failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(subscription.queue.get(), POLL)
                # Let a burst of events gather: one round per batch, not per event.
                await asyncio.sleep(BATCH_WINDOW)
                while not subscription.queue.empty():
                    subscription.queue.get_nowait()
                subscription.lagged = False

    async def process_once(self) -> int:
        """Turn new (and late-committed) events into deliveries; returns how many new
        events were read. The kept cursor only passes events older than GRACE, so a
        restart re-reads the young ones (deliveries are unique per webhook and event)."""
        # Late events can only hide in the ids between the kept cursor and the highest
        # read that were not seen: ask for those (usually none), not for the window.
        gaps = [i for i in range(self._settled + 1, self._read + 1) if i not in self._seen]
        async with self.database.transaction() as session:
            feed = EventFeed(session)
            fresh = await feed.after(self._read, limit=PAGE)
            if len(gaps) > PAGE:
                window = await feed.window(self._settled, self._read)
                gaps = [i for i, _ in window if i not in self._seen]
            late = await feed.by_ids(gaps) if gaps else []
            todo = [row for row in [*late, *fresh] if row.id not in self._seen]
            relevant = {row.job_id for row in todo if row.type in EVENT_TYPES}
            # One look-up for the whole batch: most events have no webhook at all, and
            # a query per event would cost more than the event itself.
            hooked = (
                await WebhookRepository(session).jobs_with_hooks(relevant) if relevant else set()
            )
        created = 0
        for row in todo:
            if row.job_id in hooked:
                created += await self._deliveries_for(row)
            self._seen[row.id] = row.created_at
        if fresh:
            self._read = fresh[-1].id
        young = utcnow() - GRACE
        settled = self._settled
        for event_id in sorted(self._seen):
            if self._seen[event_id] >= young:
                break
            settled = event_id
        if settled != self._settled:
            # The kept cursor is written at most every SAVE_EVERY: a restart re-reads a
            # few more seconds of events, and deliveries are unique per webhook and event.
            if time.monotonic() - self._saved_at >= SAVE_EVERY:
                async with self.database.transaction() as session:
                    await StateRepository(session).set(CURSOR, settled)
                self._saved_at = time.monotonic()
            self._settled = settled
            self._seen = {i: at for i, at in self._seen.items() if i > settled}
        if created:
            self.wake_delivery()
        return len(fresh)

    async def _deliveries_for(self, event: EventRow) -> int:
        kind = EVENT_TYPES.get(event.type)
        if kind is None:
            return 0
        async with self.database.transaction() as session:
            job = await JobRepository(session).get(event.job_id)
            hooks = (
                []
                if job is None
                else await WebhookRepository(session).matching(event.job_id, job.owner)
            )
        hooks = [h for h in hooks if not h.events or kind in h.events]
        if kind == "progress":
            hooks = [h for h in hooks if self._progress_due(h.id, event)]
        if not hooks or job is None:
            return 0
        view = await self.jobs.get(event.job_id, owner=None, base_url=self.base_url)
        payload = {
            "type": f"job.{kind}",
            "timestamp": event.created_at.isoformat(),
            "data": view.model_dump(mode="json"),
        }
        now = utcnow()
        created = 0
        async with self.database.transaction() as session:
            deliveries = DeliveryRepository(session)
            for hook in hooks:
                created += await deliveries.add_once(
                    WebhookDeliveryRow(
                        id=str(uuid.uuid4()),
                        webhook_id=hook.id,
                        owner=job.owner,
                        job_id=job.id,
                        event_id=event.id,
                        event_type=kind,
                        url=hook.url,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        history=[],
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        return created

    def _progress_due(self, webhook_id: str, event: EventRow) -> bool:
        key = (webhook_id, event.job_id)
        last = self._last_progress.get(key)
        interval = timedelta(seconds=self.settings.webhook_progress_interval)
        if last is not None and event.created_at - last < interval:
            return False
        if len(self._last_progress) > 10_000:
            self._last_progress.clear()
        self._last_progress[key] = event.created_at
        return True

    @property
    def base_url(self) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"http://{self.settings.host}:{self.settings.port}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    created, sep, delivery_id = cursor.partition("|")
    try:
        if not sep:
            raise ValueError(cursor)
        return datetime.fromisoformat(created), delivery_id
    except ValueError as exc:
        raise InvalidRequest("cursor is not one this server issued", field="cursor") from exc
