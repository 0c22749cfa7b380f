"""Real worker processes for the cluster tests: ``atelier worker`` as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.conftest import FAST

# Quick leases and heartbeats so that faults show within seconds.
CLUSTER_FAST: dict[str, Any] = {
    **FAST,
    "worker_heartbeat_interval": 0.3,
    "worker_lease_timeout": 3.0,
}


def cluster_env(database_url: str, data_dir: Path, **extra: Any) -> dict[str, str]:
    """The same environment for every process of a cluster, as an operator sets it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    values = {**CLUSTER_FAST, **extra}
    env.update({f"ATELIER_{key.upper()}": str(value) for key, value in values.items()})
    env["ATELIER_DATABASE_URL"] = database_url
    env["ATELIER_DATA_DIR"] = str(data_dir)
    env["ATELIER_SHAPE"] = "cluster"
    return env


@dataclass
class WorkerProcess:
    name: str
    comfyui: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, slots: int = 2) -> WorkerProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "atelier",
                    "worker",
                    "--comfyui",
                    self.comfyui,
                    "--name",
                    self.name,
                    "--slots",
                    str(slots),
                    "--log-level",
                    "warning",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup; only the lease can tell."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Workers:
    """Starts worker processes and stops every one at the end of a test."""

    def __init__(self, database_url: str, data_dir: Path, **extra: Any) -> None:
        self.env = cluster_env(database_url, data_dir, **extra)
        self.data_dir = data_dir
        self.started: list[WorkerProcess] = []

    def start(self, name: str, comfyui: str, slots: int = 2) -> WorkerProcess:
        worker = WorkerProcess(name, comfyui, self.env, self.data_dir / f"worker-{name}.log")
        self.started.append(worker.start(slots))
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


async def alive_workers(database_url: str) -> list[str]:
    """Names of workers whose heartbeat is fresh (read straight from the table)."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT name FROM workers WHERE NOT stopped "
            "AND heartbeat_at > now() - interval '2 seconds' ORDER BY name"
        )
    finally:
        await connection.close()
    return [row["name"] for row in rows]


async def worker_rows(database_url: str) -> list[dict[str, Any]]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT name, url, slots, state, checkpoint, system_stats FROM workers ORDER BY name"
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


@dataclass
class ReplicaProcess:
    """``atelier serve`` in the cluster shape, as a subprocess on its own port."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ReplicaProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "atelier",
                    "serve",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


async def follow_events(urls: list[str], seen: list[int], stop: asyncio.Event) -> int:
    """Follow /api/v1/events, moving to the next replica with Last-Event-ID whenever
    the current one goes away; appends every event id to ``seen``. Returns reconnects.
    The frame's ``id:`` is the stream's cursor (what to send back as Last-Event-ID; it
    never passes an id that may still commit); the event's own id is in its data."""
    reconnects = 0
    turn = 0
    cursor: str | None = None
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        while not stop.is_set():
            url = urls[turn % len(urls)]
            headers = {"Last-Event-ID": cursor} if cursor else {}
            try:
                async with client.stream("GET", f"{url}/api/v1/events", headers=headers) as answer:
                    if answer.status_code != 200:
                        raise httpx.TransportError(f"status {answer.status_code}")
                    async for line in answer.aiter_lines():
                        if line.startswith("id:"):
                            cursor = line[3:].strip()
                        elif line.startswith("data:"):
                            event_id = int(json.loads(line[5:])["id"])
                            if not seen or event_id > seen[-1]:  # a replay repeats some
                                seen.append(event_id)
                        if stop.is_set():
                            return reconnects
            except (httpx.TransportError, httpx.RemoteProtocolError):
                pass
            reconnects += 1
            turn += 1
            await asyncio.sleep(0.2)
    return reconnects


async def event_ids(database_url: str) -> list[int]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT id FROM job_events ORDER BY id")
    finally:
        await connection.close()
    return [row["id"] for row in rows]


async def job_counts(database_url: str) -> dict[str, int]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
    finally:
        await connection.close()
    return {row["status"]: int(row["n"]) for row in rows}
