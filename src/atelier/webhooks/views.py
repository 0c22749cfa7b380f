"""Request and response models of /api/v1/webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from atelier.jobs.views import JobWebhook


class WebhookCreate(JobWebhook):
    """POST /api/v1/webhooks: a standing subscription to all of the owner's jobs."""


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str] = Field(description="Event filter; empty means all")
    job_id: str | None = Field(description="Set for a job's own webhook")
    created_at: datetime


class WebhookCreated(WebhookView):
    secret: str = Field(
        description="whsec_...: verifies this subscription's deliveries; shown once"
    )


class WebhookList(BaseModel):
    items: list[WebhookView]


class WebhookSecret(BaseModel):
    secret: str = Field(description="whsec_...: signs the deliveries of per-job webhooks")


class DeliveryAttempt(BaseModel):
    model_config = ConfigDict(extra="allow")

    at: datetime
    status_code: int | None
    error: str | None
    seconds: float


class DeliveryView(BaseModel):
    id: str = Field(description="Also the webhook-id header of every attempt")
    webhook_id: str
    job_id: str
    event_id: int
    event_type: str
    url: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    history: list[DeliveryAttempt]
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None


def delivery_view(row: Any) -> DeliveryView:
    return DeliveryView.model_validate(row, from_attributes=True)
