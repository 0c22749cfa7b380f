"""Scenario 4, fairness: owner A floods the queue with jobs, then owner B submits a few.
How long B's jobs wait, with fair share between owners on and off."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bench.cluster import add_shape_argument, cluster
from bench.harness import AtelierProcess, fakes, percentile, report, sampler_graph

STEPS = 5
seeds = itertools.count(70_000)


def make_key(atelier: AtelierProcess, name: str) -> str:
    """``atelier keys create`` on the server's database (the single node's before it
    starts; the cluster's PostgreSQL database while it runs)."""
    where = (
        ["--database-url", atelier.database_url]
        if atelier.database_url
        else ["--data-dir", str(atelier.data_dir)]
    )
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "atelier",
            "keys",
            "create",
            "--name",
            name,
            "--scope",
            "submit",
            "--max-queued",
            "100000",
            "--rate-limit",
            "1000000",
            *where,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return output.stdout.strip().splitlines()[-1]


async def flood_then_trickle(
    url: str, key_a: str, key_b: str, flood: int, trickle: int
) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        gate = asyncio.Semaphore(16)

        async def submit(key: str) -> str:
            async with gate:
                response = await client.post(
                    "/api/v1/jobs",
                    json={"graph": sampler_graph(next(seeds), steps=STEPS)},
                    headers={"Authorization": f"Bearer {key}"},
                )
                response.raise_for_status()
                return str(response.json()["id"])

        await asyncio.gather(*(submit(key_a) for _ in range(flood)))
        b_ids = [await submit(key_b) for _ in range(trickle)]
        waits = []
        for job_id in b_ids:
            while True:
                job = (
                    await client.get(
                        f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key_b}"}
                    )
                ).json()
                if job["status"] == "completed":
                    waits.append(job["queue_seconds"])
                    break
                await asyncio.sleep(0.05)
        # Let A's flood drain so the next run starts from an empty house.
        while True:
            counts = (await client.get("/", headers={"Authorization": f"Bearer {key_a}"})).json()[
                "jobs"
            ]
            if not counts["queued"] and not counts["running"]:
                return waits
            await asyncio.sleep(0.2)


@contextmanager
def _atelier(shape: str, urls: list[str], fair: bool) -> Iterator[tuple[AtelierProcess, str, str]]:
    """The server and the two owners' keys."""
    if shape == "cluster":
        with cluster(urls, fair_share=str(fair).lower()) as atelier:
            yield atelier, make_key(atelier, "studio-a"), make_key(atelier, "studio-b")
        return
    atelier = AtelierProcess(urls, fair_share=str(fair).lower())
    atelier.env["ATELIER_DATA_DIR"] = str(atelier.data_dir)
    key_a, key_b = make_key(atelier, "studio-a"), make_key(atelier, "studio-b")
    with atelier:
        yield atelier, key_a, key_b


def run(args: argparse.Namespace) -> None:
    rows = []
    for fair in (True, False):
        with fakes(args.backends, step_time=args.time / STEPS) as backends:
            urls = [f"gpu{i}={fake.url}" for i, fake in enumerate(backends)]
            with _atelier(args.shape, urls, fair) as (atelier, key_a, key_b):
                started = time.perf_counter()
                waits = asyncio.run(
                    flood_then_trickle(atelier.url, key_a, key_b, args.flood, args.trickle)
                )
                elapsed = time.perf_counter() - started
        rows.append(
            (
                "on" if fair else "off",
                args.flood,
                args.trickle,
                percentile(waits, 50),
                max(waits),
                elapsed,
            )
        )
    report(
        f"Fair share ({args.shape} shape, {args.backends} backends, T = {args.time * 1000:.0f} ms; A floods {args.flood}, then B submits "
        f"{args.trickle})",
        ["fair share", "A's jobs", "B's jobs", "B's wait p50 s", "B's wait max s", "run s"],
        rows,
        ["wait = queue_seconds of B's jobs: from submit until ComfyUI started executing them"],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--trickle", type=int, default=5)
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--time", type=float, default=0.05, help="T in seconds")
    add_shape_argument(parser)
