"""Scenario 7, memory: the server's resident memory (RSS) idle, with 100,000 finished
jobs in its database, and while a client downloads a 200 MB output through it; and the
memory the runner's output collection needs to copy a 200 MB file out of ComfyUI."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.harness import AtelierProcess, fakes, report, rss_mib, sampler_graph, threaded_fake

CHUNK = 1 << 20


def migrate(data_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "atelier", "migrate", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
    )


def fill(data_dir: Path, jobs: int) -> None:
    """Insert finished jobs straight into the SQLite file, as months of use would leave."""
    graph = json.dumps(sampler_graph(1, steps=20))
    now = datetime.now(UTC).isoformat(sep=" ")
    with sqlite3.connect(data_dir / "atelier.db") as db:
        db.executemany(
            "INSERT INTO jobs (id, status, priority, graph, metadata, labels, attempt, cancel_requested, progress,"
            " created_at, queued_at, started_at, finished_at, updated_at) VALUES"
            " (?, 'completed', 0, ?, '{}', '{}', 1, 0, 1.0, ?, ?, ?, ?, ?)",
            ((str(uuid.uuid4()), graph, now, now, now, now, now) for _ in range(jobs)),
        )


def big_blob(store_root: Path, size: int) -> tuple[str, int]:
    """A file of ``size`` bytes, stored under its sha256 as the artifact store does."""
    digest = hashlib.sha256()
    temporary = store_root / "big.tmp"
    store_root.mkdir(parents=True, exist_ok=True)
    block = os.urandom(CHUNK)
    with temporary.open("wb") as file:
        for _ in range(size // CHUNK):
            digest.update(block)
            file.write(block)
    key = digest.hexdigest()
    (store_root / key[:2]).mkdir(exist_ok=True)
    temporary.rename(store_root / key[:2] / key)
    return key, size


def add_artifact(data_dir: Path, key: str, size: int) -> str:
    job_id, artifact_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).isoformat(sep=" ")
    with sqlite3.connect(data_dir / "atelier.db") as db:
        db.execute(
            "INSERT INTO jobs (id, status, priority, graph, metadata, labels, attempt, cancel_requested, progress,"
            " created_at, queued_at, updated_at) VALUES (?, 'completed', 0, '{}', '{}', '{}', 1, 0, 1.0, ?, ?, ?)",
            (job_id, now, now, now),
        )
        db.execute(
            "INSERT INTO artifacts (id, job_id, role, filename, kind, content_type, size, sha256, animated,"
            " storage_key, created_at) VALUES (?, ?, 'output', 'big.mp4', 'video', 'video/mp4', ?, ?, 0, ?, ?)",
            (artifact_id, job_id, size, key, key, now),
        )
    return artifact_id


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def server_memory(args: argparse.Namespace) -> list[tuple[str, float]]:
    rows = []
    with fakes(1) as (fake,):
        empty = AtelierProcess([fake.url])
        migrate(empty.data_dir)
        with empty:
            httpx.get(f"{empty.url}/api/v1/jobs").raise_for_status()
            rows.append(("idle, empty database", rss_mib(empty.pid)))
        full = AtelierProcess([fake.url])
        migrate(full.data_dir)
        fill(full.data_dir, args.jobs)
        key, size = big_blob(full.data_dir / "artifacts", args.mib * CHUNK)
        artifact_id = add_artifact(full.data_dir, key, size)
        with full:
            for path in ("/", "/api/v1/jobs?limit=200", "/api/v1/jobs?status=completed&limit=200"):
                httpx.get(f"{full.url}{path}", timeout=60).raise_for_status()
            rows.append((f"{args.jobs:,} finished jobs, after listing", rss_mib(full.pid)))
            # More statuses than the read model holds (job_cache_size, 4096): it is full.
            with sqlite3.connect(full.data_dir / "atelier.db") as db:
                ids = [row[0] for row in db.execute("SELECT id FROM jobs LIMIT ?", (args.reads,))]
            with httpx.Client(base_url=full.url, timeout=60) as client:
                for job_id in ids:
                    client.get(f"/api/v1/jobs/{job_id}").raise_for_status()
            rows.append(
                (
                    f"... and after reading {len(ids):,} jobs' status (read model full)",
                    rss_mib(full.pid),
                )
            )
            received = 0
            with (
                PeakRss(full.pid) as peak,
                httpx.stream(
                    "GET", f"{full.url}/api/v1/artifacts/{artifact_id}", timeout=120
                ) as response,
            ):
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
            assert received == size
            rows.append((f"peak while a client downloads {args.mib} MB", peak.peak))
    return rows


async def collect_big(fake_url: str, filename: str, store_root: Path) -> int:
    from atelier.comfyui.client import ComfyClient
    from atelier.comfyui.messages import HistoryEntry
    from atelier.dispatch.outputs import collect_outputs
    from atelier.storage.local import LocalArtifactStore

    entry = HistoryEntry(
        outputs={"9": {"images": [{"filename": filename, "subfolder": "", "type": "output"}]}}
    )
    async with ComfyClient(fake_url, timeout=120) as client:
        (output,) = await collect_outputs(client, entry, LocalArtifactStore(store_root))
    return output.blob.size


def runner_memory(args: argparse.Namespace) -> list[tuple[str, float]]:
    with threaded_fake() as fake:
        output_dir = Path(fake.root_dir) / "output"
        output_dir.mkdir(parents=True, exist_ok=True)
        key, _ = big_blob(output_dir / "blob", args.mib * CHUNK)
        (output_dir / "blob" / key[:2] / key).rename(output_dir / "big_00001_.mp4")
        before = rss_mib(os.getpid())
        with PeakRss(os.getpid()) as peak:
            size = asyncio.run(collect_big(fake.url, "big_00001_.mp4", output_dir.parent / "store"))
        assert size == args.mib * CHUNK
    return [
        (
            f"runner copying a {args.mib} MB output out of ComfyUI (growth over {before:.0f} MiB)",
            peak.peak - before,
        )
    ]


def run(args: argparse.Namespace) -> None:
    rows = server_memory(args) + runner_memory(args)
    report(
        "Memory (resident set size)",
        ["situation", "MiB"],
        rows,
        [
            "server rows: the Atelier process; the runner row: output collection in this process, which also "
            "runs the fake ComfyUI"
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument(
        "--reads", type=int, default=5_000, help="distinct jobs whose status is read"
    )
