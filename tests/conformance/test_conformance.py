"""Replays every real ComfyUI capture against a fresh fake and compares the transcripts.

Each capture was recorded against a real ComfyUI that had already served earlier probes,
so some depend on state (cached nodes, uploaded files, installed models). Each scenario
below rebuilds that state in a short, documented prelude before the replay; the
comparison itself is never relaxed per scenario.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier.testing import FakeComfyUI
from tests.conformance.transcript import (
    CAPTURES,
    COMFY_ROOT_IN_CAPTURES,
    WsRecorder,
    load_capture,
    normalize,
    png_bytes,
    ws_signatures,
)

Prelude = Callable[[FakeComfyUI, httpx.AsyncClient], Awaitable[None]]
Wait = Callable[[WsRecorder, dict[str, str]], Awaitable[None]]

EMPTY_1024 = {
    "class_type": "EmptyImage",
    "inputs": {"width": 1024, "height": 1024, "batch_size": 1, "color": 16744448},
}
BLUR_15 = {
    "class_type": "ImageBlur",
    "inputs": {"image": ["1", 0], "blur_radius": 15, "sigma": 3.0},
}


async def run_to_end(client: httpx.AsyncClient, prompt: dict[str, Any]) -> str:
    """Runs a prompt without a client_id (so it sends no targeted messages) to the end."""
    response = await client.post("/prompt", json={"prompt": prompt})
    assert response.status_code == 200, response.text
    prompt_id: str = response.json()["prompt_id"]
    for _ in range(300):
        if (await client.get(f"/history/{prompt_id}")).json():
            return prompt_id
        await asyncio.sleep(0.02)
    raise AssertionError("prelude prompt did not finish")


async def no_prelude(fake: FakeComfyUI, client: httpx.AsyncClient) -> None:
    return None


async def cache_empty_and_blur(fake: FakeComfyUI, client: httpx.AsyncClient) -> None:
    # normal_run's capture shows nodes 1 and 2 cached: an earlier probe had computed them.
    # A preview output keeps "normal_*" file names free.
    preview = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    await run_to_end(client, {"1": EMPTY_1024, "2": BLUR_15, "3": preview})


async def run_normal_first(fake: FakeComfyUI, client: httpx.AsyncClient) -> None:
    # cached_rerun re-submits normal_run's graph right after normal_run.
    capture = load_capture("normal_run")
    await run_to_end(client, capture["http"][0]["req"]["body"]["prompt"])


async def cache_empty_image(fake: FakeComfyUI, client: httpx.AsyncClient) -> None:
    # two_queued's capture shows the EmptyImage cached for both prompts.
    preview = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    await run_to_end(client, {"1": EMPTY_1024, "2": preview})


async def uploaded_inputs(fake: FakeComfyUI, client: httpx.AsyncClient) -> None:
    # LoadImage's combo in the capture lists files uploaded by earlier probes
    # (example.png ships with ComfyUI and with the fake).
    (fake.root_dir / "input" / "cap_input.png").write_bytes(png_bytes((1, 2, 3)))
    (fake.root_dir / "input" / "cap_input (1).png").write_bytes(png_bytes((4, 5, 6)))
    (fake.root_dir / "input" / "corrupt.png").write_bytes(b"not an image")


async def until_node_2_runs(ws: WsRecorder, ids: dict[str, str]) -> None:
    # The capture's client sent /interrupt while node 2 (the slow one) was running.
    await ws.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "2")


@dataclass
class Scenario:
    prelude: Prelude = no_prelude
    fake_kwargs: dict[str, Any] = field(default_factory=dict)
    # node_time after the prelude: makes the slow node of the capture slow here too, so
    # messages from concurrent requests interleave as they did on the real server.
    node_time: float = 0.0
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    waits: dict[int, Wait] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    "normal_run": Scenario(prelude=cache_empty_and_blur),
    "cached_rerun": Scenario(prelude=run_normal_first),
    "two_queued": Scenario(prelude=cache_empty_image, node_time=0.3),
    "interrupt_running": Scenario(node_time=0.5, waits={2: until_node_2_runs}),
    "runtime_error_and_missing_file": Scenario(uploads=[("corrupt.png", b"this is no PNG")]),
    "upload_loadimage_view": Scenario(
        uploads=[
            ("cap_input.png", png_bytes((10, 20, 30))),
            ("cap_input.png", png_bytes((10, 20, 30))),
            ("cap_input.png", png_bytes((200, 20, 30))),
        ]
    ),
    "validation_error_no_output": Scenario(),
    "validation_error_out_of_range": Scenario(),
    "validation_error_unknown_node": Scenario(),
    "info_endpoints_and_bad_bodies": Scenario(
        prelude=uploaded_inputs,
        # The capturing server had exactly one checkpoint and no LoRA installed.
        fake_kwargs={"models": {"checkpoints": ["tiny-sd15-random.safetensors"]}},
    ),
}


@dataclass
class Exchange:
    status: int
    content_type: str | None
    body: Any


def _body_of(response: httpx.Response) -> Any:
    content_type = response.headers.get("content-type")
    if content_type and content_type.startswith("application/json"):
        return response.json()
    if content_type and content_type.split("/")[0] in ("image", "audio", "video"):
        return f"<{len(response.content)} bytes>"
    return response.text


async def _send(
    client: httpx.AsyncClient,
    request: dict[str, Any],
    path: str,
    uploads: Iterator[tuple[str, bytes]],
) -> httpx.Response:
    body = request.get("body")
    if body == "<multipart>":
        name, content = next(uploads)
        return await client.post(path, files={"image": (name, content, "image/png")})
    if body is None:
        return await client.request(request["method"], path)
    return await client.request(request["method"], path, json=body)


async def replay(
    fake: FakeComfyUI, capture: dict[str, Any], scenario: Scenario
) -> tuple[list[Exchange], WsRecorder, dict[str, str]]:
    ids: dict[str, str] = {}  # capture's prompt id -> ours
    exchanges: list[Exchange] = []
    uploads = iter(scenario.uploads)
    async with httpx.AsyncClient(base_url=fake.url, timeout=30) as client:
        await scenario.prelude(fake, client)
        fake.set_timing(node_time=scenario.node_time)
        async with WsRecorder(fake.url, capture["client_id"]) as ws:
            await ws.wait_count(1)  # the greeting, before any request (as when captured)
            for index, recorded in enumerate(capture["http"]):
                request = recorded["req"]
                path = request["path"]
                for theirs, ours in ids.items():
                    path = path.replace(theirs, ours)
                if index in scenario.waits:
                    await scenario.waits[index](ws, ids)
                if path.startswith("/history/"):
                    # The capturing client read history once the prompt had ended.
                    await ws.wait_done(path.rsplit("/", 1)[1])
                response = await _send(client, request, path, uploads)
                exchange = Exchange(
                    response.status_code, response.headers.get("content-type"), _body_of(response)
                )
                exchanges.append(exchange)
                accepted = recorded["status"] == 200 and exchange.status == 200
                if request["path"] == "/prompt" and request["method"] == "POST" and accepted:
                    ids[recorded["resp"]["prompt_id"]] = exchange.body["prompt_id"]
            await ws.wait_count(len(capture["ws"]), timeout=15)
            await asyncio.sleep(0.3)  # anything extra would arrive now
    return exchanges, ws, ids


def _rewriter(fake: FakeComfyUI, ids: dict[str, str]) -> Callable[[str], str]:
    ours_to_theirs = {ours: theirs for theirs, ours in ids.items()}
    root = str(fake.root_dir)

    def rewrite(text: str) -> str:
        for ours, theirs in ours_to_theirs.items():
            text = text.replace(ours, theirs)
        return text.replace(root, COMFY_ROOT_IN_CAPTURES)

    return rewrite


BYTES = re.compile(r"^<\d+ bytes>$")


def _comparable(body: Any, rewrite: Callable[[str], str] = lambda s: s) -> Any:
    if isinstance(body, str) and BYTES.match(body):
        return "<bytes>"
    return normalize(body, rewrite)


CAPTURE_NAMES = sorted(p.stem for p in CAPTURES.glob("*.json"))


def test_every_capture_has_a_scenario() -> None:
    assert CAPTURE_NAMES and set(CAPTURE_NAMES) == set(SCENARIOS)


@pytest.mark.parametrize("name", CAPTURE_NAMES)
async def test_capture_replays_identically(name: str, tmp_path: Path) -> None:
    capture = load_capture(name)
    scenario = SCENARIOS[name]
    async with FakeComfyUI(root_dir=tmp_path / "comfy", **scenario.fake_kwargs) as fake:
        exchanges, ws, ids = await replay(fake, capture, scenario)
        rewrite = _rewriter(fake, ids)

    assert len(exchanges) == len(capture["http"])
    for index, (recorded, ours) in enumerate(zip(capture["http"], exchanges, strict=True)):
        where = f"{name} #{index} {recorded['req']['method']} {recorded['req']['path']}"
        assert ours.status == recorded["status"], where
        if "content_type" in recorded:
            assert ours.content_type == recorded["content_type"], where
        assert _comparable(ours.body, rewrite) == _comparable(recorded["resp"]), where

    expected = ws_signatures(m["msg"] for m in capture["ws"])
    assert ws_signatures(ws.messages) == expected
    greeting = ws.json_messages()[0]["data"]
    assert greeting["sid"] == capture["client_id"]
