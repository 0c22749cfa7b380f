"""Hostile input across the whole API: every probe of atelier.testing.hostile is answered
with a 4xx problem document, nothing is written, and the server goes on serving.

The figures (probes, worst latency, peak RSS) for a server process are printed by
``python -m bench hostile``; here the same corpus runs against a server in this process.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from atelier.testing import hostile
from tests.helpers import job_reaches, submit


async def _counts(http: Any) -> dict[str, Any]:
    return {
        "jobs": [j["id"] for j in (await http.get("/api/v1/jobs?limit=200")).json()["items"]],
        "workflows": (await http.get("/api/v1/workflows")).json(),
        "webhooks": (await http.get("/api/v1/webhooks")).json(),
        "keys": (await http.get("/api/v1/admin/keys")).json(),
    }


@pytest.fixture
async def served(server_factory: Any, fake: Any, tmp_path: Any) -> Any:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url], auth_mode="open"
    )
    async with server.client() as http:
        job = await submit(http, hostile.GRAPH)
        done = await job_reaches(http, job["id"], "completed")
        yield server, http, done


async def test_every_hostile_probe_is_refused_and_changes_nothing(served: Any) -> None:
    server, http, done = served
    openapi = (await http.get("/openapi.json")).json()
    before = await _counts(http)
    port = int(server.url.rsplit(":", 1)[1])
    probes = list(
        hostile.probes(
            openapi,
            job_id=done["id"],
            artifact_id=done["outputs"][0]["id"],
        )
    )

    def run() -> list[hostile.Answer]:
        return [hostile.send("127.0.0.1", port, probe) for probe in probes]

    answers = await asyncio.to_thread(run)
    wrong = {a.probe.name: why for a in answers if (why := hostile.verdict(a))}
    assert wrong == {}, "\n".join(f"{k}: {v}" for k, v in wrong.items())
    assert len(answers) > 300
    assert await _counts(http) == before
    assert (await http.get("/health")).status_code == 200
    again = await submit(http, hostile.GRAPH)
    await job_reaches(http, again["id"], "completed")


async def test_a_websocket_with_an_out_of_range_event_id_is_refused(served: Any) -> None:
    server, _, done = served
    url = (
        server.url.replace("http://", "ws://") + f"/api/v1/jobs/{done['id']}/ws?after=" + ("9" * 30)
    )
    with pytest.raises(websockets.exceptions.WebSocketException):
        async with websockets.connect(url) as ws:
            await asyncio.wait_for(ws.recv(), 10)


async def test_regressions_named_in_issue_11(served: Any) -> None:
    """Each of these was a 500, a reset connection or a 202 before."""
    _, http, done = served
    deep: Any = {"a": 1}
    for _ in range(900):
        deep = {"x": deep}
    response = await http.post("/api/v1/jobs", json={"graph": hostile.GRAPH, "metadata": deep})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["reason"] == "nested deeper than 64 levels"

    body = '{"graph": {}, "labels": {"a": "\\ud800"}}'
    response = await http.post(
        "/api/v1/jobs", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "labels.a",
            "reason": "contains an unpaired surrogate (U+D800); strings must be valid Unicode",
        }
    ]

    response = await http.get(
        f"/api/v1/jobs/{done['id']}/events",
        headers={"last-event-id": "99999999999999999999999999"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Last-Event-ID"

    graph = json.loads(json.dumps(hostile.GRAPH))
    graph["2"]["inputs"]["filename_prefix"] = "../../etc/cron.d/x"
    response = await http.post("/api/v1/jobs", json={"graph": graph})
    assert response.status_code == 422
    assert response.json()["errors"][0]["input"] == "filename_prefix"

    graph = json.loads(json.dumps(hostile.GRAPH))
    graph["2"]["inputs"]["images"] = ["2", 0]
    response = await http.post("/api/v1/jobs", json={"graph": graph})
    assert response.status_code == 422
    assert "cycle" in response.json()["errors"][0]["reason"]
