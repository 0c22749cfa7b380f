"""A load generator in a process of its own: ``python -m bench.loadgen URL MODE C N``.
MODE is ``submit`` (POST /api/v1/jobs) or ``status`` (GET /api/v1/jobs/{id} of jobs it
made first). Prints one JSON line: requests, seconds, rate, p50 and p99 in ms, errors."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

import httpx

from bench.harness import percentile, sampler_graph


async def main(url: str, mode: str, concurrency: int, total: int) -> dict[str, float]:
    seeds = itertools.count(1_000_000)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        ids: list[str] = []
        if mode == "status":
            for _ in range(20):
                response = await client.post(
                    "/api/v1/jobs", json={"graph": sampler_graph(next(seeds), steps=2)}
                )
                ids.append(response.json()["id"])
        latencies: list[float] = []
        errors = 0
        counter = itertools.count()

        async def worker() -> None:
            nonlocal errors
            while (n := next(counter)) < total:
                started = time.perf_counter()
                if mode == "submit":
                    response = await client.post(
                        "/api/v1/jobs", json={"graph": sampler_graph(next(seeds), steps=2)}
                    )
                else:
                    response = await client.get(f"/api/v1/jobs/{ids[n % len(ids)]}")
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
    }


if __name__ == "__main__":
    url, mode, concurrency, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, mode, concurrency, total))))
