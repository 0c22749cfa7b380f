"""Idempotency-Key for any POST that creates a job (reusable by every such route).

    job = await idempotent(runtime, creator, idempotency_key, "POST /api/v1/jobs", body,
                           response, create=..., replay=...)

Without the header the request simply runs. With it, the same key and body from the same
owner within ``idempotency_ttl`` return the first job (header ``Idempotent-Replayed:
true``); the same key with another body is 409 ``idempotency-key-reused``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Response
from pydantic import BaseModel

from atelier.auth.idempotency import fingerprint
from atelier.jobs.views import JobView
from atelier.runtime import Runtime

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[!-~]([ -~]*[!-~])?$",
        description="Retry-safe submits: the same key and body within 24 hours return the "
        "original job; another body with the same key is 409.",
    ),
]


async def idempotent(
    runtime: Runtime,
    creator: str | None,
    key: str | None,
    route: str,
    body: BaseModel,
    response: Response,
    *,
    create: Callable[[str | None], Awaitable[JobView]],
    replay: Callable[[str], Awaitable[JobView]],
) -> JobView:
    """``create(job_id)`` makes the job, under ``job_id`` unless that is None."""
    if key is None:
        return await create(None)
    digest = fingerprint(route, body.model_dump(mode="json"))
    view, replayed = await runtime.security.idempotency.run(creator, key, digest, create, replay)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view
