"""Scenario 5, the API under load: submit (POST /api/v1/jobs), status (GET
/api/v1/jobs/{id}) and list (GET /api/v1/jobs) from ``wrk``, side by side with a bare
uvicorn app answering a fixed JSON document (bench/bare.py) loaded the same way in the
same run, on SQLite and on PostgreSQL. The ratio to that baseline is the figure that
holds on a shared, noisy machine; each figure is the median of ``--repeat`` rounds, and
every round measures the baseline again just before Atelier.

The backend answers once (so every submit is checked against its real /object_info) and
is then stopped, so that jobs stay queued: this measures the API, not the GPUs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import httpx

from bench import wrk
from bench.harness import AtelierProcess, cpu_seconds, fakes, free_port, report, sampler_graph

POSTGRES = os.environ.get("ATELIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUESTS = ("baseline", "submit", "status", "list")


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def bare_uvicorn(loop: str = "uvloop", busy_us: float = 0) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare", str(port), loop, str(busy_us)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    name = f"atelier_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def settle(pid: int, *, limit: float = 10.0) -> None:
    """Wait until the server has worked off the last load: wrk stops with up to N
    requests still in the server, and a phase that began under them would count their
    time in its own tail (every submit's 4 ms before the first status answer)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.2)
        if cpu_seconds(pid) - before < 0.02:  # under a tenth of a core
            return


def run(args: argparse.Namespace) -> None:
    rows = []
    for kind in args.databases:
        with (
            database(kind) as url,
            bare_uvicorn() as bare,
            fakes(1) as (fake,),
            AtelierProcess([fake.url], database_url=url, health_interval=60) as atelier,
        ):
            fake.close()  # its /object_info is known now; jobs will stay queued
            body = json.dumps({"graph": sampler_graph(1, steps=2)})
            with httpx.Client(base_url=atelier.url, timeout=30) as client:
                ids = [
                    client.post(
                        "/api/v1/jobs", content=body, headers={"content-type": "application/json"}
                    ).json()["id"]
                    for _ in range(20)
                ]
            status_paths = [f"/api/v1/jobs/{job_id}" for job_id in ids]
            for connections in args.concurrency:
                rounds: dict[str, list[wrk.Load]] = defaultdict(list)
                cpu: dict[str, list[float]] = defaultdict(list)
                for _ in range(args.repeat):
                    for request in REQUESTS:
                        target, paths, method, payload = {
                            "baseline": (bare, ["/"], "GET", None),
                            "submit": (atelier.url, ["/api/v1/jobs"], "POST", body),
                            "status": (atelier.url, status_paths, "GET", None),
                            "list": (atelier.url, ["/api/v1/jobs?limit=20"], "GET", None),
                        }[request]
                        settle(atelier.pid)
                        before = cpu_seconds(atelier.pid)
                        load = wrk.run(
                            target,
                            paths,
                            connections=connections,
                            seconds=args.seconds,
                            method=method,
                            body=payload,
                        )
                        rounds[request].append(load)
                        if request != "baseline":
                            cpu[request].append(
                                (cpu_seconds(atelier.pid) - before) / max(load.requests, 1)
                            )
                for request in REQUESTS:
                    loads = rounds[request]
                    rate = statistics.median(load.rate for load in loads)
                    ratios = [
                        load.rate / base.rate
                        for load, base in zip(loads, rounds["baseline"], strict=True)
                    ]
                    rows.append(
                        (
                            kind if request != "baseline" else "-",
                            request,
                            connections,
                            round(rate),
                            statistics.median(ratios) if request != "baseline" else 1.0,
                            statistics.median(load.p50_ms for load in loads),
                            statistics.median(load.p99_ms for load in loads),
                            round(statistics.median(cpu[request]) * 1e6) if request in cpu else "-",
                            sum(load.errors for load in loads),
                        )
                    )
    report(
        "API throughput and latency under wrk (medians of "
        f"{args.repeat} rounds of {args.seconds:g} s)",
        [
            "database",
            "request",
            "connections",
            "req/s",
            "of bare uvicorn",
            "p50 ms",
            "p99 ms",
            "server CPU us/req",
            "errors",
        ],
        rows,
        notes=[
            "baseline: bench/bare.py, a bare uvicorn ASGI app (uvloop, httptools) answering "
            "a fixed JSON document; 'of bare uvicorn' is the median of each round's ratio.",
            f"load: {wrk.WRK} -t1 -cN -dS --latency with a Lua script (bench/wrk.py).",
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk's duration per load")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
