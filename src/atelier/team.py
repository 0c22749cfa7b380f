"""The parts that make one Atelier safe for many users, started after the core runtime.

Keys, scopes, signed links, limits and idempotency (``Security``), and webhooks (the
event consumer and the delivery worker). ``start_team`` wires them into the jobs service
and the dispatcher; ``stop_team`` stops them before the database closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atelier.auth.service import build_security
from atelier.webhooks.delivery import DeliveryWorker
from atelier.webhooks.service import WebhookService

if TYPE_CHECKING:
    from atelier.runtime import Runtime


async def start_team(runtime: Runtime) -> None:
    settings = runtime.settings
    security = build_security(settings, runtime.database)
    runtime.jobs.sign_url = security.signer.url
    runtime.dispatcher.owner_caps = security.keys.running_caps  # the same dict, kept fresh
    deliveries = DeliveryWorker(settings, runtime.database)
    webhooks = WebhookService(
        settings, runtime.database, runtime.bus, runtime.jobs, wake_delivery=deliveries.wake
    )
    runtime.jobs.submit_extensions.append(webhooks)
    runtime.security, runtime.webhooks, runtime.deliveries = security, webhooks, deliveries
    await security.start()
    await webhooks.start()
    await deliveries.start()


async def stop_team(runtime: Runtime) -> None:
    await runtime.webhooks.stop()
    await runtime.deliveries.stop()
    await runtime.security.stop()
