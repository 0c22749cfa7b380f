"""Faults another process switches on over POST /fake/fault, and the execution log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import websockets

from atelier.testing import FakeComfyUI
from atelier.testing.faults import read_execution_log
from tests.conformance.support import image_graph, run, submit, view


async def test_errors_answer_500_until_switched_off_and_fake_routes_stay_reachable(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    state = await http.post("/fake/fault", json={"errors": True, "for_seconds": 0.5})
    assert state.json() == {"hang": False, "errors": True, "page": 0, "view_delay": 0.0}
    trouble = await http.get("/queue")
    assert trouble.status_code == 500
    assert "Server got itself in trouble" in trouble.text
    assert (await http.get("/fake/stats")).status_code == 200
    await asyncio.sleep(0.8)
    assert (await http.get("/queue")).status_code == 200
    assert (await http.get("/fake/fault")).json()["errors"] is False


async def test_hang_freezes_everything_but_the_switch(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    await http.post("/fake/fault", json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        await http.get("/queue", timeout=0.5)
    assert (await http.post("/fake/fault", json={"hang": False})).json()["hang"] is False
    assert (await http.get("/queue")).status_code == 200


async def test_slow_view_and_bad_requests(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    entry = await run(http, image_graph())
    item = entry["outputs"]["3"]["images"][0]
    await http.post("/fake/fault", json={"view_delay": 0.6})
    started = time.monotonic()
    response = await view(http, item)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    assert time.monotonic() - started >= 0.6
    refused = await http.post("/fake/fault", json={"view_delay": -1, "bogus": 1})
    assert refused.status_code == 400
    assert {e["loc"][0] for e in refused.json()["error"]} == {"view_delay", "bogus"}


async def test_drop_websockets_closes_them(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    async with websockets.connect(comfy.url.replace("http", "ws") + "/ws?clientId=x") as ws:
        await ws.recv()  # the status message
        await http.post("/fake/fault", json={"drop_websockets": True})
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert comfy.ws_connection_count == 0


async def test_execution_log_records_every_start_and_end(tmp_path: Path) -> None:
    log = tmp_path / "executions.jsonl"
    async with (
        FakeComfyUI(root_dir=tmp_path / "comfy", name="gpu7", execution_log=log) as comfy,
        httpx.AsyncClient(base_url=comfy.url, timeout=20) as http,
    ):
        first = await submit(http, image_graph(), prompt_id="p-1")
        await run(http, image_graph(color=1), prompt_id="p-2")
    records = list(read_execution_log(log))
    assert [(r.event, r.prompt_id) for r in records] == [
        ("start", first),
        ("end", first),
        ("start", "p-2"),
        ("end", "p-2"),
    ]
    assert {r.name for r in records} == {"gpu7"} and all(r.success for r in records[1::2])
    with log.open("a") as handle:
        handle.write('{"event": "start", "prompt_id": "cut by a ki')  # a SIGKILL mid-line
    assert len(list(read_execution_log(log))) == 4
