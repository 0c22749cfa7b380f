"""Scenario 1, dispatch overhead: N jobs of execution time T through Atelier vs the same
prompts queued straight into the same fake ComfyUI. The ratio of makespans is Atelier's
cost; with pipelined dispatch the GPU starts the next prompt the moment one ends."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics

from bench.harness import (
    AtelierProcess,
    cpu_seconds,
    direct_makespan,
    fakes,
    report,
    sampler_graph,
    submit_and_wait,
)

STEPS = 10
seeds = itertools.count(1)


def graphs(n: int) -> list[dict]:
    return [sampler_graph(next(seeds), steps=STEPS) for _ in range(n)]


def run(args: argparse.Namespace) -> None:
    rows = []
    for t in args.times:
        n = args.jobs or max(10, int(8 / t))
        ratios, directs, throughs, cpus = [], [], [], []
        with (
            fakes(1, step_time=t / STEPS) as (fake,),
            AtelierProcess([fake.url], backend_slots=args.slots) as atelier,
        ):
            asyncio.run(submit_and_wait(atelier.url, graphs(2)))  # warm up
            for _ in range(args.repeat):
                direct = asyncio.run(direct_makespan(fake.url, graphs(n)))
                # One request at a time, as the direct baseline posts its prompts.
                before = cpu_seconds(atelier.pid)
                through, jobs = asyncio.run(submit_and_wait(atelier.url, graphs(n), concurrency=1))
                cpus.append((cpu_seconds(atelier.pid) - before) / n)
                assert all(j["status"] == "completed" for j in jobs)
                ratios.append(through / direct)
                directs.append(direct)
                throughs.append(through)
        ratio = statistics.median(ratios)
        per_job_ms = (statistics.median(throughs) - statistics.median(directs)) / n * 1000
        rows.append(
            (
                f"{t * 1000:.0f} ms",
                n,
                args.repeat,
                statistics.median(directs),
                statistics.median(throughs),
                ratio,
                f"{min(ratios):.3f}..{max(ratios):.3f}",
                per_job_ms,
                statistics.median(cpus) * 1000,
            )
        )
    report(
        f"Dispatch overhead (1 backend, {args.slots} slots)",
        [
            "T",
            "jobs",
            "runs",
            "direct makespan s",
            "Atelier makespan s",
            "ratio (median)",
            "ratio range",
            "overhead ms/job",
            "Atelier CPU ms/job",
        ],
        rows,
        [
            "ratio = Atelier makespan / direct makespan, each run interleaved (direct, then Atelier) on one fake; "
            "target <= 1.02 at T = 50 ms and <= 1.005 at 200 ms",
            "Atelier CPU ms/job: user + system time of the server process (/proc/PID/stat) over "
            "a run, per job: submit, dispatch, events, output copy, the final GET",
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--times", type=float, nargs="+", default=[0.05, 0.2, 1.0], help="T in seconds"
    )
    parser.add_argument("--jobs", type=int, default=0, help="N (default: about 8 s of work per T)")
    parser.add_argument("--slots", type=int, default=2, help="backend_slots (1 = no pipelining)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per T")
