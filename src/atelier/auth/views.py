"""API keys as clients see them: request and response models of /api/v1/admin/keys.

Pure Pydantic (no server imports), so the SDK shares them with the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from atelier.auth.caller import OWNER_NAME

Scope = Literal["admin", "submit", "read", "metrics"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=OWNER_NAME.pattern, description="The owner: keys with one name share jobs."
    )
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    rate_limit: int | None = Field(None, ge=0, le=1_000_000, description="Requests/minute")
    max_queued: int | None = Field(None, ge=0, le=1_000_000_000)
    max_running: int | None = Field(None, ge=0, le=1_000_000)
    max_artifact_bytes: int | None = Field(None, ge=0, le=2**62)


class KeyView(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it")
    scopes: list[str]
    rate_limit: int | None
    max_queued: int | None
    max_running: int | None
    max_artifact_bytes: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyView):
    key: str = Field(description="The key itself: shown only now, store it safely")


class KeyList(BaseModel):
    items: list[KeyView]
