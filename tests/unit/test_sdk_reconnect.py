"""The SDK's event-stream resume logic against scripted HTTP answers (httpx's own
MockTransport): what it does on a gateway error, an early end, and a real 404. The real
server and a real cut connection are in tests/integration/test_sdk_sync.py."""

from __future__ import annotations

import json

import httpx
import pytest

from atelier.client import Atelier, JobNotFound


def sse(*events: tuple[int, str]) -> bytes:
    frames = []
    for event_id, kind in events:
        data = {
            "id": event_id,
            "job_id": "j1",
            "type": kind,
            "data": {},
            "created_at": "2026-12-02T10:00:00+00:00",
        }
        frames.append(f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n")
    return "".join(frames).encode()


def test_a_gateway_error_and_an_early_end_are_resumed_with_last_event_id() -> None:
    seen: list[str | None] = []
    answers = [
        httpx.Response(
            503,
            json={"type": "https://atelier.dev/problems/service-unavailable", "status": 503},
        ),
        httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=sse((1, "queued"), (2, "running")),
        ),
        httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=sse((2, "running"), (3, "completed")),  # 2 again: not delivered twice
        ),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("last-event-id"))
        return answers.pop(0)

    with Atelier("http://atelier.test", api_key="", transport=httpx.MockTransport(handler)) as c:
        events = list(c.events("j1"))
    assert [(e.id, e.type) for e in events] == [(1, "queued"), (2, "running"), (3, "completed")]
    assert seen == [None, None, "2"]


def test_a_missing_job_is_raised_at_once() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(
            404,
            json={"type": "https://atelier.dev/problems/job-not-found", "detail": "no job"},
            headers={"content-type": "application/problem+json"},
        )

    transport = httpx.MockTransport(handler)
    with (
        Atelier("http://atelier.test", api_key="", transport=transport) as c,
        pytest.raises(JobNotFound) as caught,
    ):
        list(c.events("nope"))
    assert calls == ["/api/v1/jobs/nope/events"] and caught.value.detail == "no job"
