"""Studio: the makespan of a 10-segment video on 1 backend and on 4.

A long video is 11 keyframes and 10 first-last-frame segments (each needs its two
keyframes), then the join. Fake ComfyUI processes, one per backend, each take T per job
(sampler steps x step time; frames are small, so drawing them costs little), one job
at a time (backend_slots=1). On one backend the 21 jobs run one after another. On four,
the best any scheduler can do with 21 equal jobs is ceil(21 / 4) = 6 rounds: a speed-up
of 21/6 = 3.5 (the limit of 4 needs jobs that split evenly). The goal is >= 3.5 of
that; the join (PyAV, on Atelier's CPU) is in both makespans."""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import AtelierProcess, free_port, report

CHILD = """
import asyncio, sys
from atelier.testing.fake_comfyui import DEFAULT_MODELS
from atelier.testing.studio_models import with_studio_models
from atelier.testing.threaded import run_fake_comfyui
asyncio.run(run_fake_comfyui(port=int(sys.argv[1]), step_time=float(sys.argv[2]),
    root_dir=sys.argv[3], models=with_studio_models(DEFAULT_MODELS)))
"""


@contextmanager
def studio_fakes(count: int, step_time: float) -> Iterator[list[str]]:
    """Fake ComfyUI processes that also list the studio's models (Wan, Qwen edit)."""
    root = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(port), str(step_time), str(root / f"f{i}")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/system_stats", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("fake ComfyUI did not start")
                time.sleep(0.05)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def one_video(url: str, args: argparse.Namespace) -> dict[str, Any]:
    params = {
        "prompt": "a lantern festival",
        "duration": args.segments,
        "segments": args.segments,
        "fps": 8,
        "width": 64,
        "height": 64,
        "steps": args.steps,
        "review": "none",
    }
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        response = await client.post("/api/v1/pipelines/long_video/runs", json={"params": params})
        if response.status_code != 202:
            raise RuntimeError(f"the run was refused: {response.text}")
        run: dict[str, Any] = response.json()
        while run["status"] not in ("completed", "failed", "cancelled", "awaiting_review"):
            await asyncio.sleep(0.1)
            run = (await client.get(f"/api/v1/runs/{run['id']}")).json()
    if run["status"] != "completed":
        raise RuntimeError(f"run ended {run['status']}: {run['error']}")
    return run


def run(args: argparse.Namespace) -> None:
    rows = []
    makespans: dict[int, float] = {}
    jobs = 2 * args.segments + 1
    for k in args.backends:
        with (
            studio_fakes(k, args.time / args.steps) as urls,
            AtelierProcess(
                [f"gpu{i}={u}" for i, u in enumerate(urls)],
                backend_slots=1,
                studio_resync_interval=0.5,
            ) as atelier,
        ):
            result = asyncio.run(one_video(atelier.url, args))
        created = datetime.fromisoformat(result["created_at"])
        finished = datetime.fromisoformat(result["finished_at"])
        makespan = (finished - created).total_seconds()
        makespans[k] = makespan
        segments = [s for s in result["steps"] if s["group"] == "segment"]
        used = len({s["backend"] for s in segments})
        bound = jobs / math.ceil(jobs / k)
        speedup = makespans[args.backends[0]] / makespan
        rows.append((k, jobs, used, makespan, speedup, bound, speedup / bound))
    report(
        f"A {args.segments}-segment video (T = {args.time * 1000:.0f} ms per job)",
        [
            "backends",
            "jobs",
            "backends used by segments",
            "makespan s",
            "speed-up",
            "best possible",
            "of best",
        ],
        rows,
        [
            "speed-up = makespan on the first row / this makespan; best possible = jobs / "
            "ceil(jobs / backends) for equal jobs. Goal: >= 3.5 on 4 backends.",
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backends", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--time", type=float, default=1.0, help="T in seconds per job")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps per job")
