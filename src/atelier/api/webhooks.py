"""/api/v1/webhooks: standing subscriptions, the per-owner secret, and the delivery ledger."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from atelier.api.deps import Creator, Owner, WebhooksDep
from atelier.webhooks.views import (
    DeliveryPage,
    DeliveryView,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookSecret,
    WebhookView,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.post("", operation_id="create_webhook", status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookCreate, webhooks: WebhooksDep, creator: Creator
) -> WebhookCreated:
    """Subscribe to events of all your jobs. The answer carries the subscription's secret
    (`whsec_...`), once: deliveries are signed with it (Standard Webhooks)."""
    return await webhooks.create(creator, body)


@router.get("", operation_id="list_webhooks")
async def list_webhooks(webhooks: WebhooksDep, owner: Owner) -> WebhookList:
    return await webhooks.find(owner)


@router.get("/secret", operation_id="webhook_secret")
async def webhook_secret(webhooks: WebhooksDep, creator: Creator) -> WebhookSecret:
    """The secret that signs the deliveries of your per-job webhooks (`webhook` on a job)."""
    return WebhookSecret(secret=await webhooks.owner_secret(creator))


@router.get("/deliveries", operation_id="list_deliveries")
async def list_deliveries(
    webhooks: WebhooksDep,
    owner: Owner,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    status_filter: Annotated[
        Literal["pending", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    """Deliveries, newest first: attempts, status codes, errors, next try."""
    return await webhooks.deliveries(
        owner, job_id=job_id, status=status_filter, cursor=cursor, limit=limit
    )


@router.post("/deliveries/{delivery_id}/redeliver", operation_id="redeliver")
async def redeliver(delivery_id: str, webhooks: WebhooksDep, owner: Owner) -> DeliveryView:
    """Send a delivery again now (the same webhook-id, so receivers can deduplicate)."""
    view: DeliveryView = await webhooks.redeliver(delivery_id, owner)
    return view


@router.get("/{webhook_id}", operation_id="get_webhook")
async def get_webhook(webhook_id: str, webhooks: WebhooksDep, owner: Owner) -> WebhookView:
    return await webhooks.get(webhook_id, owner)


@router.delete(
    "/{webhook_id}", operation_id="delete_webhook", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_webhook(webhook_id: str, webhooks: WebhooksDep, owner: Owner) -> Response:
    await webhooks.delete(webhook_id, owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
