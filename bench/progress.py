"""Scenario 6, progress latency: from the moment the fake ComfyUI sends a ``progress``
message to the moment an SSE client of Atelier receives the matching event (p50, p99),
with the default progress_interval and with every step delivered."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from typing import Any

import httpx

from bench.harness import AtelierProcess, percentile, report, sampler_graph, threaded_fake

seeds = itertools.count(90_000)


def hook_sends(fake: Any) -> dict[tuple[str, int], float]:
    """Record when the fake queues each progress message for its sockets."""
    sent: dict[tuple[str, int], float] = {}
    inner = fake.fake
    original = inner.send_sync

    def send_sync(event: Any, data: Any, sid: Any) -> None:
        if event == "progress" and isinstance(data, dict):
            sent[(str(data.get("prompt_id")), int(data.get("value", 0)))] = time.time()
        original(event, data, sid)

    inner.send_sync = send_sync
    return sent


async def measure(
    url: str, sent: dict[tuple[str, int], float], jobs: int, steps: int
) -> list[float]:
    latencies: list[float] = []
    prompt_of: dict[str, str] = {}
    seen: set[tuple[str, int]] = set()
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("GET", "/api/v1/events", timeout=httpx.Timeout(60, read=None)) as stream,
    ):
        for _ in range(jobs):
            await client.post(
                "/api/v1/jobs", json={"graph": sampler_graph(next(seeds), steps=steps)}
            )
        finished = 0
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            received = time.time()
            event = json.loads(line[5:])
            data = event["data"]
            if event["type"] == "running":
                prompt_of[event["job_id"]] = data["prompt_id"]
            elif (
                event["type"] == "progress"
                and data.get("node_type") == "KSampler"
                and data.get("step")
            ):
                key = (prompt_of.get(event["job_id"], ""), int(data["step"]))
                if key in sent and key not in seen:
                    seen.add(key)
                    latencies.append(received - sent[key])
            elif event["type"] in ("completed", "failed"):
                finished += 1
                if finished == jobs:
                    return latencies
    return latencies


def run(args: argparse.Namespace) -> None:
    rows = []
    for interval in args.intervals:
        with threaded_fake(step_time=args.step_time) as fake:
            sent = hook_sends(fake)
            with AtelierProcess([fake.url], progress_interval=interval) as atelier:
                latencies = asyncio.run(measure(atelier.url, sent, args.jobs, args.steps))
        rows.append(
            (
                f"{interval:g} s",
                len(sent),
                len(latencies),
                percentile(latencies, 50) * 1000,
                percentile(latencies, 99) * 1000,
            )
        )
    report(
        f"Progress latency, ComfyUI progress message -> SSE event ({args.jobs} jobs x {args.steps} steps, "
        f"{args.step_time * 1000:.0f} ms per step)",
        ["progress_interval", "progress sent", "events measured", "p50 ms", "p99 ms"],
        rows,
        [
            "progress_interval throttles events per job; the batch window (50 ms) groups writes across jobs"
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-time", type=float, default=0.05)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.1, 0.0])
