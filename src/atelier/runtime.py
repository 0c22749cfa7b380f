"""Everything a running Atelier holds, built in order and closed in reverse order."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atelier.db.database import Database
from atelier.dispatch.backends import BackendPool
from atelier.dispatch.base import Dispatcher
from atelier.dispatch.ledger import JobLedger
from atelier.dispatch.local import LocalDispatcher
from atelier.events import EventBus, LocalEventBus
from atelier.jobs.service import JobsService
from atelier.settings import Settings
from atelier.storage import ArtifactStore, build_store
from atelier.team import start_team, stop_team

if TYPE_CHECKING:
    from atelier.auth.service import Security
    from atelier.production.studio import Studio
    from atelier.webhooks.delivery import DeliveryWorker
    from atelier.webhooks.service import WebhookService

log = logging.getLogger("atelier")


@dataclass
class Runtime:
    settings: Settings
    database: Database
    bus: EventBus
    pool: BackendPool
    store: ArtifactStore
    ledger: JobLedger
    dispatcher: Dispatcher
    jobs: JobsService
    extras: list[Any] = field(default_factory=list)
    # Keys, limits and webhooks (atelier.team sets these at start).
    security: Security = field(init=False)
    webhooks: WebhookService = field(init=False)
    deliveries: DeliveryWorker = field(init=False)
    # Projects, pipeline runs and the gallery (atelier.production.studio).
    studio: Studio = field(init=False)


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
    bus: EventBus = LocalEventBus()
    if database.dialect == "postgresql":
        # Several processes share this database: events reach every one of them.
        from atelier.db.notify import PostgresEventBus

        bus = PostgresEventBus(
            database, grace=settings.event_gap_grace, poll_interval=settings.poll_interval
        )
    await bus.start()
    store = build_store(settings)
    await store.start()
    ledger = JobLedger(database, bus)
    dispatcher_ref: list[LocalDispatcher] = []
    pool = BackendPool(
        backends,
        slots=settings.backend_slots,
        interval=settings.health_interval,
        timeout=settings.health_timeout,
        on_change=lambda: dispatcher_ref[0].wake() if dispatcher_ref else None,
    )
    dispatcher: Dispatcher
    if settings.shape == "cluster":
        # An API replica: `atelier worker` processes run the jobs (docs/CLUSTER.md).
        from atelier.db.notify import PostgresEventBus
        from atelier.dispatch.cluster import ClusterDispatcher

        if not isinstance(bus, PostgresEventBus):
            raise ValueError("ATELIER_SHAPE=cluster needs PostgreSQL (ATELIER_DATABASE_URL)")
        dispatcher = ClusterDispatcher(settings, ledger=ledger, bus=bus)
    else:
        local = LocalDispatcher(settings, ledger=ledger, pool=pool, store=store)
        dispatcher_ref.append(local)
        dispatcher = local
    jobs = JobsService(settings, ledger=ledger, dispatcher=dispatcher, pool=pool, store=store)
    runtime = Runtime(settings, database, bus, pool, store, ledger, dispatcher, jobs, extras)
    await start_team(runtime)  # keys, limits, webhooks: wired before any job moves
    await pool.start()
    await jobs.workflows.start()  # workflow templates: built-in, <data dir>/workflows, database
    await dispatcher.start()
    from atelier.production.studio import start_studio  # the studio sits on the core

    runtime.studio = await start_studio(runtime)
    return runtime


async def stop_runtime(runtime: Runtime) -> None:
    # 1. stop taking and following work (jobs stay "running" and are re-attached later),
    #    then write the progress still waiting for its batch,
    # 2. stop health checks and close backend connections, and the workflow registry's
    #    refresher, 3. stop webhook delivery (its ledger keeps what is pending),
    # 4. close the database, 5. stop anything started for --demo.
    from atelier.production.studio import stop_studio

    await stop_studio(runtime.studio)  # 0. the run engine: runs resume from their tables
    await runtime.dispatcher.stop()
    await runtime.ledger.close()
    await runtime.pool.close()
    await runtime.jobs.workflows.close()
    await stop_team(runtime)
    await runtime.store.close()
    await runtime.bus.close()
    await runtime.database.close()
    for extra in reversed(runtime.extras):
        await extra.close()
