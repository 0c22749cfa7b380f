"""Counting after a chaos run: every job's fate, duplicate executions from the fakes' own
logs, every output downloaded and hashed, every SSE client's ids against the table."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from PIL import Image

from atelier.testing.faults import Execution
from bench.chaos_workload import TERMINAL, StreamWatcher, Submission

# Faults after which a backend may have run a prompt that Atelier then gave up on.
DISRUPTIVE = {"kill_backend", "hang", "errors"}


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str  # a backend's name, "atelier" or "postgres"
    start: float  # time.time()
    end: float


@dataclass
class Counts:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    cancelled: int = 0
    stuck: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    executions: int = 0
    extra_explained: int = 0
    extra_unexplained: list[str] = field(default_factory=list)
    unknown_prompts: int = 0
    outputs_checked: int = 0
    outputs_bad: list[str] = field(default_factory=list)
    streams: int = 0
    streams_missed: list[str] = field(default_factory=list)
    stream_out_of_order: int = 0
    stream_reconnects: int = 0
    stream_repeats: int = 0

    def defects(self) -> list[str]:
        """What must be zero; empty means the run passed."""
        problems = []
        for name, value in (
            ("lost jobs", len(self.lost)),
            ("stuck jobs", len(self.stuck)),
            ("unexplained duplicate executions", len(self.extra_unexplained)),
            ("bad or missing outputs", len(self.outputs_bad)),
            ("SSE streams that missed an event", len(self.streams_missed)),
        ):
            if value:
                problems.append(f"{value} {name}")
        return problems


async def job_fates(
    client: httpx.AsyncClient, submissions: list[Submission], counts: Counts
) -> dict[str, dict[str, Any]]:
    """GET every accepted job; returns the views of those that exist."""
    views: dict[str, dict[str, Any]] = {}
    gate = asyncio.Semaphore(8)

    async def one(item: Submission) -> None:
        assert item.job_id is not None
        async with gate:
            response = await client.get(f"/api/v1/jobs/{item.job_id}")
        if response.status_code == 404:
            counts.lost.append(item.job_id)
            return
        response.raise_for_status()
        views[item.job_id] = response.json()

    for item in submissions:
        if item.rejected:
            counts.rejected[item.rejected] += 1
    accepted = [s for s in submissions if s.job_id]
    counts.accepted = len(accepted)
    await asyncio.gather(*(one(s) for s in accepted))
    for view in views.values():
        status = view["status"]
        if status == "completed":
            counts.completed += 1
        elif status == "failed":
            counts.failed[(view.get("error") or {}).get("type", "?")] += 1
        elif status == "cancelled":
            counts.cancelled += 1
        else:
            counts.stuck.append(view["id"])
    return views


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def duplicates(
    views: dict[str, dict[str, Any]],
    executions: list[Execution],
    faults: list[Fault],
    counts: Counts,
) -> None:
    """A job's graph run more than once is explained only if each extra run was on a
    backend that a disruptive fault hit while that run's attempt was alive."""
    attempts: dict[str, tuple[str, dict[str, Any]]] = {}
    for view in views.values():
        for attempt in view["attempts"]:
            attempts[attempt["prompt_id"]] = (view["id"], attempt)
    runs: dict[str, list[Execution]] = defaultdict(list)
    for execution in executions:
        if execution.event != "start":
            continue
        counts.executions += 1
        if execution.prompt_id not in attempts:
            counts.unknown_prompts += 1
            continue
        runs[attempts[execution.prompt_id][0]].append(execution)
    for job_id, job_runs in runs.items():
        if len(job_runs) < 2:
            continue
        view = views[job_id]
        final = next((a["prompt_id"] for a in view["attempts"] if a["status"] == "completed"), None)
        job_runs.sort(key=lambda e: e.time)
        kept_final = False
        for run in job_runs:
            if run.prompt_id == final and not kept_final:
                kept_final = True  # the run whose outputs the job has
                continue
            attempt = attempts[run.prompt_id][1]
            if _faulted(run, attempt, view, faults):
                counts.extra_explained += 1
            else:
                counts.extra_unexplained.append(
                    f"job {job_id}: prompt {run.prompt_id} on {run.name} at {run.time:.1f} "
                    f"(attempt {attempt['number']} {attempt['status']})"
                )


def _faulted(
    run: Execution, attempt: dict[str, Any], view: dict[str, Any], faults: list[Fault]
) -> bool:
    until = _ts(attempt.get("finished_at")) or _ts(view.get("finished_at")) or float("inf")
    return any(
        f.kind in DISRUPTIVE
        and f.target == run.name
        and f.start <= until + 1
        and f.end >= run.time - 1
        for f in faults
    )


async def outputs(
    client: httpx.AsyncClient,
    views: dict[str, dict[str, Any]],
    expected: dict[str, int],
    counts: Counts,
) -> None:
    """Download every output of every completed job: count, size, sha256, and images open."""
    gate = asyncio.Semaphore(8)

    async def one(job_id: str, artifact: dict[str, Any]) -> None:
        async with gate:
            response = await client.get(artifact["url"])
        counts.outputs_checked += 1
        body = response.content
        if response.status_code != 200:
            counts.outputs_bad.append(f"{artifact['id']}: HTTP {response.status_code}")
        elif (
            hashlib.sha256(body).hexdigest() != artifact["sha256"] or len(body) != artifact["size"]
        ):
            counts.outputs_bad.append(f"{artifact['id']} of job {job_id}: sha256 or size differs")
        elif artifact["kind"] == "image":
            try:
                with Image.open(io.BytesIO(body)) as image:
                    image.verify()
            except Exception as exc:
                counts.outputs_bad.append(f"{artifact['id']}: not an image ({exc})")

    tasks = []
    for job_id, view in views.items():
        if view["status"] != "completed":
            continue
        if len(view["outputs"]) < expected[job_id]:
            counts.outputs_bad.append(
                f"job {job_id}: {len(view['outputs'])} outputs, expected {expected[job_id]}"
            )
        tasks += [one(job_id, artifact) for artifact in view["outputs"]]
    await asyncio.gather(*tasks)


async def persisted_events(database_url: str, data_dir: Path) -> dict[int, str]:
    """event id -> job id, straight from the job_events table."""
    if database_url.startswith("postgresql"):
        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = await connection.fetch("SELECT id, job_id FROM job_events")
        finally:
            await connection.close()
        return {int(r["id"]): str(r["job_id"]) for r in rows}
    with sqlite3.connect(f"file:{data_dir / 'atelier.db'}?mode=ro", uri=True) as db:
        return {int(i): str(j) for i, j in db.execute("SELECT id, job_id FROM job_events")}


def streams(
    watchers: list[StreamWatcher],
    events: dict[int, str],
    views: dict[str, dict[str, Any]],
    counts: Counts,
) -> None:
    by_job: dict[str, set[int]] = defaultdict(set)
    for event_id, job_id in events.items():
        by_job[job_id].add(event_id)
    for watcher in watchers:
        if (
            watcher.job_id is not None
            and views.get(watcher.job_id, {}).get("status") not in TERMINAL
        ):
            continue  # a stuck job is counted as stuck already
        counts.streams += 1
        counts.stream_reconnects += max(0, watcher.connects - 1)
        expected = set(events) if watcher.job_id is None else by_job[watcher.job_id]
        missed = expected - set(watcher.received)
        if missed:
            counts.streams_missed.append(
                f"{watcher.path}: missed {len(missed)} of {len(expected)} "
                f"(e.g. {sorted(missed)[:5]})"
            )
        counts.stream_out_of_order += sum(
            1 for a, b in zip(watcher.received, watcher.received[1:], strict=False) if b < a
        )
        counts.stream_repeats += len(watcher.received) - len(set(watcher.received))


def process_usage(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of a process."""
    rss = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))
