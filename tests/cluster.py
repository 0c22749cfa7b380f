"""Real worker processes for the cluster tests: ``atelier worker`` as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import FAST

# Quick leases and heartbeats so that faults show within seconds.
CLUSTER_FAST: dict[str, Any] = {
    **FAST,
    "worker_heartbeat_interval": 0.3,
    "worker_lease_timeout": 3.0,
    "event_gap_grace": 1.0,
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
