"""Everything a running Atelier holds, built in one pass and closed in reverse order.

Each part is given what it needs when it is made (constructor injection, typed to the
seams: ``Dispatcher``, ``ArtifactStore``, ``EventBus``, ``ComfyClientFactory``); no part
is patched or completed afterwards. The shape (``settings.shape``) picks the
implementations behind the seams: single node (``LocalDispatcher``, an in-process bus
unless the database is PostgreSQL) or an API replica of the cluster
(``ClusterDispatcher``; ``atelier worker`` processes run the jobs, docs/CLUSTER.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from atelier.auth.service import Security, build_security
from atelier.comfyui.client import ComfyClient
from atelier.db.database import Database
from atelier.dispatch.backends import BackendPool
from atelier.dispatch.base import Dispatcher
from atelier.dispatch.ledger import JobLedger
from atelier.dispatch.local import LocalDispatcher
from atelier.events import EventBus, LocalEventBus
from atelier.jobs.service import JobsService
from atelier.jobs.streams import EventStreams
from atelier.production.studio import Studio, build_studio
from atelier.settings import Settings
from atelier.storage import ArtifactStore, build_store
from atelier.webhooks.delivery import DeliveryWorker
from atelier.webhooks.service import JobWebhooks, WebhookService

log = logging.getLogger("atelier")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database: Database
    bus: EventBus
    pool: BackendPool
    store: ArtifactStore
    ledger: JobLedger
    dispatcher: Dispatcher
    jobs: JobsService
    streams: EventStreams
    # Keys, scopes, signed links, limits, idempotency; webhooks and their delivery.
    security: Security
    webhooks: WebhookService
    deliveries: DeliveryWorker
    # Projects, pipeline runs and the gallery (docs/STUDIO.md).
    studio: Studio
    extras: list[Any] = field(default_factory=list)  # started for --demo


async def start_runtime(settings: Settings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    extras: list[Any] = []
    backends = list(settings.backends)
    if settings.demo:
        from atelier.testing.demo import demo_comfyui  # only --demo imports the fake

        # Every built-in workflow runs on it (AnimateDiff as a simulated custom node).
        fake = demo_comfyui(settings.data_dir / "demo-comfyui", step_time=settings.demo_step_time)
        await fake.start()
        extras.append(fake)
        backends.append(f"demo={fake.url}")
        log.warning(
            "DEMO MODE: a fake ComfyUI runs in-process at %s; it simulates models and "
            "produces test-pattern images, not diffusion output.",
            fake.url,
        )
    if not backends:
        log.warning(
            "no ComfyUI backend configured: jobs will wait in the queue "
            "(use --backend URL or ATELIER_BACKENDS)"
        )
    database = Database(settings.resolved_database_url)
    await database.migrate()
    try:
        runtime = build_runtime(settings, database, backends, extras)
    except BaseException:
        await database.close()
        for extra in reversed(extras):
            await extra.close()
        raise
    # Started in order: nothing moves a job before keys, limits and webhooks are up.
    await runtime.bus.start()
    await runtime.store.start()
    await runtime.security.start()
    await runtime.webhooks.start()
    await runtime.deliveries.start()
    await runtime.pool.start()
    await runtime.jobs.workflows.start()  # templates: built-in, <data dir>/workflows, database
    await runtime.dispatcher.start()
    await runtime.studio.start()  # the run engine resumes every active run
    return runtime


def build_runtime(
    settings: Settings, database: Database, backends: list[str], extras: list[Any]
) -> Runtime:
    """Every part, made once with what it needs; nothing is started yet."""
    bus = _event_bus(settings, database)
    store = build_store(settings)
    security = build_security(settings, database)
    deliveries = DeliveryWorker(settings, database)
    pool = BackendPool(
        backends,
        slots=settings.backend_slots,
        interval=settings.health_interval,
        timeout=settings.health_timeout,
        client_factory=ComfyClient,
    )
    ledger = JobLedger(database, bus)
    dispatcher = _dispatcher(settings, ledger, bus, pool, store, security)
    jobs = JobsService(
        settings,
        ledger=ledger,
        dispatcher=dispatcher,
        pool=pool,
        store=store,
        sign_url=security.signer.url,
        submit_extensions=[JobWebhooks(settings)],
    )
    webhooks = WebhookService(settings, database, bus, jobs, wake_delivery=deliveries.wake)
    studio = build_studio(settings, database=database, bus=bus, store=store, pool=pool, jobs=jobs)
    return Runtime(
        settings=settings,
        database=database,
        bus=bus,
        pool=pool,
        store=store,
        ledger=ledger,
        dispatcher=dispatcher,
        jobs=jobs,
        streams=EventStreams(ledger, bus),
        security=security,
        webhooks=webhooks,
        deliveries=deliveries,
        studio=studio,
        extras=extras,
    )


def _event_bus(settings: Settings, database: Database) -> EventBus:
    if database.dialect != "postgresql":
        return LocalEventBus()
    # Several processes share this database: events reach every one of them.
    from atelier.db.notify import PostgresEventBus

    return PostgresEventBus(
        database, grace=settings.event_gap_grace, poll_interval=settings.poll_interval
    )


def _dispatcher(
    settings: Settings,
    ledger: JobLedger,
    bus: EventBus,
    pool: BackendPool,
    store: ArtifactStore,
    security: Security,
) -> Dispatcher:
    caps = security.keys.running_caps  # per-key running caps: the same dict, kept fresh
    if settings.shape != "cluster":
        return LocalDispatcher(settings, ledger=ledger, pool=pool, store=store, owner_caps=caps)
    # An API replica: `atelier worker` processes run the jobs (docs/CLUSTER.md).
    from atelier.db.notify import PostgresEventBus
    from atelier.dispatch.cluster import ClusterDispatcher

    if not isinstance(bus, PostgresEventBus):
        raise ValueError("ATELIER_SHAPE=cluster needs PostgreSQL (ATELIER_DATABASE_URL)")
    return ClusterDispatcher(settings, ledger=ledger, bus=bus, owner_caps=caps)


async def stop_runtime(runtime: Runtime) -> None:
    # 0. the run engine (runs resume from their tables), 1. stop taking and following
    #    work (jobs stay "running" and are re-attached later), then write the progress
    #    still waiting for its batch, 2. stop health checks, close backend connections
    #    and the workflow registry's refresher, 3. stop webhooks and their delivery (its
    #    table keeps what is pending) and the key cache, 4. close the store, the bus and
    #    the database, 5. stop anything started for --demo.
    await runtime.studio.stop()
    await runtime.dispatcher.stop()
    await runtime.ledger.close()
    await runtime.pool.close()
    await runtime.jobs.workflows.close()
    await runtime.webhooks.stop()
    await runtime.deliveries.stop()
    await runtime.security.stop()
    await runtime.store.close()
    await runtime.bus.close()
    await runtime.database.close()
    for extra in reversed(runtime.extras):
        await extra.close()
