"""Hostile input: every probe of atelier.testing.hostile (built from the server's own
OpenAPI document: huge, deep, cyclic and invalid bodies, traversal in every id, odd Range
and Last-Event-ID headers) against a server process, on SQLite or PostgreSQL. Prints the
probes tried, how many were answered wrongly (5xx, no answer, accepted, no problem
document), the worst latency and the server's peak RSS. Nothing may be written."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import httpx

from atelier.testing import hostile
from bench.harness import AtelierProcess, fakes, percentile, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--rounds", type=int, default=1, help="times to send the whole corpus")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(args: argparse.Namespace) -> None:
    with (
        fakes(1) as [fake],
        AtelierProcess([fake.url], database_url=args.database_url, auth_mode="open") as server,
    ):
        http = httpx.Client(base_url=server.url, timeout=30)
        job = http.post("/api/v1/jobs", json={"graph": hostile.GRAPH}).json()
        deadline = time.monotonic() + 60
        while (done := http.get(f"/api/v1/jobs/{job['id']}").json())["status"] != "completed":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the reference job did not complete: {done}")
            time.sleep(0.1)
        before = http.get("/api/v1/jobs?limit=200").json()["items"]
        rss_start = peak_rss_mib(server.pid)
        probes = list(
            hostile.probes(
                http.get("/openapi.json").json(),
                job_id=done["id"],
                artifact_id=done["outputs"][0]["id"],
            )
        )
        answers: list[hostile.Answer] = []
        for _ in range(args.rounds):
            answers += [hostile.send("127.0.0.1", server.port, probe) for probe in probes]
        after = http.get("/api/v1/jobs?limit=200").json()["items"]
        alive = http.get("/health").status_code == 200
        wrong = [(a.probe.name, why) for a in answers if (why := hostile.verdict(a))]
        seconds = [a.seconds for a in answers]
        worst = max(answers, key=lambda a: a.seconds)
        statuses: dict[int, int] = {}
        for answer in answers:
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
        rows: list[list[Any]] = [
            ["probes sent", len(answers)],
            ["answered wrongly (5xx, none, accepted, not a problem)", len(wrong)],
            ["5xx", sum(1 for a in answers if a.status >= 500)],
            ["status codes", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))],
            ["p50 latency (s)", percentile(seconds, 50)],
            ["p99 latency (s)", percentile(seconds, 99)],
            ["worst latency (s)", f"{worst.seconds:.3f} ({worst.probe.name[:60]})"],
            [
                "server peak RSS before / after (MiB)",
                f"{rss_start:.1f} / {peak_rss_mib(server.pid):.1f}",
            ],
            ["jobs written by the probes", len(after) - len(before)],
            ["server still serving", alive],
        ]
        report(
            f"Hostile input ({'PostgreSQL' if args.database_url else 'SQLite'})",
            ["figure", "value"],
            rows,
            notes=[f"wrong: {name}: {why}" for name, why in wrong[:20]],
        )
