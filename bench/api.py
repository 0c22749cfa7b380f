"""Scenario 5, the API under load: submit (POST /api/v1/jobs) and status (GET
/api/v1/jobs/{id}) throughput and p50/p99 latency at concurrency 1, 16 and 64, from a
load generator in a separate process, on SQLite and on PostgreSQL.

The backend answers once (so every submit is checked against its real /object_info) and
is then stopped, so that jobs stay queued: this measures the API, not the GPUs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid

import asyncpg

from bench.harness import AtelierProcess, fakes, report

POSTGRES = os.environ.get("ATELIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def load(url: str, mode: str, concurrency: int, total: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", url, mode, str(concurrency), str(total)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace) -> None:
    rows = []
    for database in args.databases:
        name = f"atelier_bench_{uuid.uuid4().hex[:8]}"
        url = None
        if database == "postgres":
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
        try:
            with (
                fakes(1) as (fake,),
                AtelierProcess([fake.url], database_url=url, health_interval=60) as atelier,
            ):
                fake.close()  # its /object_info is known now; jobs will stay queued
                for concurrency in args.concurrency:
                    for mode in ("submit", "status"):
                        result = load(atelier.url, mode, concurrency, args.requests)
                        rows.append(
                            (
                                database,
                                mode,
                                concurrency,
                                result["requests"],
                                result["rate"],
                                result["p50_ms"],
                                result["p99_ms"],
                                result["errors"],
                            )
                        )
        finally:
            if database == "postgres":
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    report(
        "API throughput and latency (load generator in its own process)",
        ["database", "request", "concurrency", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
        rows,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--requests", type=int, default=600, help="requests per measurement")
