"""The cluster shape for the benchmarks: a fresh PostgreSQL database, one API replica
(``atelier serve``, ATELIER_SHAPE=cluster) and one ``atelier worker`` per fake ComfyUI,
each in a process of its own. Used by ``--shape cluster`` of the scenarios."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import asyncpg
import httpx

from bench.harness import AtelierProcess

POSTGRES_URL = os.environ.get(
    "ATELIER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def cluster(backends: Sequence[str], *, slots: int = 2, **env: Any) -> Iterator[AtelierProcess]:
    """``backends`` are name=URL specs, as for the single node; yields the API replica."""
    name = f"atelier_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    database_url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    workers: list[subprocess.Popen[bytes]] = []
    # Workers first: an API replica is ready (/ready) once a live worker heartbeats.
    api = AtelierProcess([], database_url=database_url, shape="cluster", ready_timeout=180.0, **env)
    worker_env = {
        **api.env,
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_DATA_DIR": str(api.data_dir),
        "ATELIER_SHAPE": "cluster",
    }
    try:
        for spec in backends:
            worker_name, _, url = spec.partition("=")
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "atelier",
                        "worker",
                        "--comfyui",
                        url,
                        "--name",
                        worker_name,
                        "--slots",
                        str(slots),
                        "--log-level",
                        "warning",
                    ],
                    env=worker_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with api:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                listed = httpx.get(f"{api.url}/api/v1/backends", timeout=5).json()["items"]
                if sum(b["status"] == "up" for b in listed) == len(backends):
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError("the workers did not come up")
            yield api
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def add_shape_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        choices=["single", "cluster"],
        default="single",
        help="cluster: an API replica and one `atelier worker` per backend on PostgreSQL",
    )


def server(
    shape: str, backends: Sequence[str], *, slots: int | None = None, **env: Any
) -> AbstractContextManager[AtelierProcess]:
    """The scenario's Atelier in either shape; ``slots`` None keeps the default."""
    if shape == "cluster":
        return cluster(backends, slots=slots or 2, **env)
    if slots is not None:
        env["backend_slots"] = slots
    return AtelierProcess(backends, **env)
