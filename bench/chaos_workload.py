"""The clients of a chaos run: a mix of jobs, a submitter that retries through restarts,
and SSE watchers that reconnect with Last-Event-ID the way a browser's EventSource does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from atelier.testing import graphs

TERMINAL = {"completed", "failed", "cancelled"}
CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"]


@dataclass
class JobSpec:
    kind: str
    body: dict[str, Any]
    outputs: int  # files a completed job must have


def _data_uri(size: int, color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _batch_image_graph(rng: random.Random, index: int) -> tuple[dict[str, Any], int]:
    batch = rng.choice([1, 1, 2])
    size = rng.choice([32, 64, 128, 256])
    graph = graphs.image_graph(color=rng.randrange(1 << 24), size=size, prefix=f"chaos{index}")
    graph["1"]["inputs"]["batch_size"] = batch
    return graph, batch


def job_mix(count: int, seed: int = 7) -> list[JobSpec]:
    """Raw graphs (executed for real, or with simulated models) and model-free built-in
    workflows, of several sizes; every spec knows how many files it must produce."""
    rng = random.Random(seed)
    photo = [_data_uri(size, (200, 80, 40)) for size in (48, 96)]
    specs: list[JobSpec] = []
    for index in range(count):
        roll = rng.random()
        labels = {"chaos": str(seed), "n": str(index)}
        if roll < 0.30:
            graph, outputs = _batch_image_graph(rng, index)
            specs.append(JobSpec("image", {"graph": graph, "labels": labels}, outputs))
        elif roll < 0.65:
            graph = graphs.sampler_graph(
                steps=rng.randint(2, 8),
                seed=rng.randrange(1 << 31),
                size=rng.choice([64, 128]),
                checkpoint=rng.choice(CHECKPOINTS),
                prefix=f"chaos{index}",
            )
            specs.append(JobSpec("sampler", {"graph": graph, "labels": labels}, 1))
        elif roll < 0.75:
            graph = graphs.animated_graph(frames=rng.randint(2, 4), size=rng.choice([32, 64]))
            specs.append(JobSpec("animated", {"graph": graph, "labels": labels}, 1))
        else:
            name = rng.choice(["invert", "blur", "resize", "webp_animation"])
            image = rng.choice(photo)
            params: dict[str, Any] = (
                {"frame1": image} if name == "webp_animation" else {"image": image}
            )
            if name == "resize":
                params["width"] = rng.choice([16, 40, 80])
            body = {"workflow": name, "params": params, "labels": labels}
            specs.append(JobSpec(f"workflow:{name}", body, 1))
    return specs


@dataclass
class Submission:
    spec: JobSpec
    key: str
    job_id: str | None = None
    rejected: str | None = None  # a 4xx that is not worth retrying: "status type"
    tries: int = 0
    accepted_at: float = 0.0


async def submit(client: httpx.AsyncClient, item: Submission, give_up_at: float) -> None:
    """POST until accepted, with the same Idempotency-Key every time: an answer lost to a
    killed server must neither lose the job nor create it twice."""
    while time.monotonic() < give_up_at:
        item.tries += 1
        try:
            response = await client.post(
                "/api/v1/jobs", json=item.spec.body, headers={"Idempotency-Key": item.key}
            )
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if response.status_code in (200, 201, 202):
            item.job_id = str(response.json()["id"])
            item.accepted_at = time.time()
            return
        if response.status_code in (409, 429) or response.status_code >= 500:
            await asyncio.sleep(0.5)
            continue
        problem = _problem_type(response)
        item.rejected = f"{response.status_code} {problem}"
        return
    item.rejected = "gave up (server unreachable)"


def _problem_type(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except (json.JSONDecodeError, AttributeError):
        return response.text[:80]


@dataclass
class StreamWatcher:
    """One SSE client: follows `path` and reconnects with Last-Event-ID (the id of the
    last frame it got, as EventSource does) whenever the connection ends."""

    path: str
    job_id: str | None = None  # None: the all-jobs stream, which never ends by itself
    received: list[int] = field(default_factory=list)
    last_id: str | None = None
    connects: int = 0
    finished: bool = False

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self.finished:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                async with client.stream(
                    "GET", self.path, headers=headers, timeout=httpx.Timeout(10, read=40)
                ) as response:
                    if response.status_code == 200:
                        self.connects += 1
                        await self._read(response)
            except httpx.HTTPError:
                pass
            if not self.finished:
                await _sleep_unless(stop, 0.3)

    async def _read(self, response: httpx.Response) -> None:
        # The frame's id is the stream's cursor (Last-Event-ID); the event's own id is in
        # its data.
        cursor: str | None = None
        event_type = ""
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                cursor = line[3:].strip()
            elif line.startswith("event:"):
                event_type = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "":
                if cursor is not None and data:
                    self.last_id = cursor
                    self.received.append(int(json.loads("\n".join(data))["id"]))
                    if self.job_id is not None and event_type in TERMINAL:
                        self.finished = True
                        return
                cursor, event_type, data = None, "", []


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
