"""Scenario 2, scaling: K backends, N jobs of execution time T each; throughput against
the ideal K/T (every GPU busy from the first moment to the last)."""

from __future__ import annotations

import argparse
import asyncio
import itertools

from bench.cluster import add_shape_argument, server
from bench.harness import (
    LAST_COMPLETIONS,
    direct_makespan,
    fakes,
    report,
    sampler_graph,
    submit_and_wait,
)

STEPS = 10
seeds = itertools.count(10_000)


def run(args: argparse.Namespace) -> None:
    rows = []
    # What one job really takes on a fake with nobody else in the way (the sampler's
    # steps plus the other nodes): the per-GPU physical limit is 1 / measured.
    with fakes(1, step_time=args.time / STEPS) as (fake,):
        graphs = [sampler_graph(next(seeds), steps=STEPS) for _ in range(args.per_backend)]
        measured = asyncio.run(direct_makespan(fake.url, graphs)) / len(graphs)
    for k in args.backends:
        n = args.per_backend * k
        with fakes(k, step_time=args.time / STEPS) as backends:
            urls = [f"gpu{i}={fake.url}" for i, fake in enumerate(backends)]
            with server(args.shape, urls, slots=args.slots) as atelier:
                asyncio.run(
                    submit_and_wait(
                        atelier.url, [sampler_graph(next(seeds), steps=STEPS) for _ in range(k)]
                    )
                )
                makespan, jobs = asyncio.run(
                    submit_and_wait(
                        atelier.url, [sampler_graph(next(seeds), steps=STEPS) for _ in range(n)]
                    )
                )
        assert all(j["status"] == "completed" for j in jobs)
        # Steady state: from the first K completions to the last one, every backend is
        # busy the whole time if nothing stalls; ramp-up and the last collection aside.
        steady = (n - k) / (LAST_COMPLETIONS[-1] - LAST_COMPLETIONS[k - 1])
        used = len({j["backend"] for j in jobs})
        throughput = n / makespan
        ideal = k / args.time
        limit = k / measured
        rows.append(
            (
                k,
                n,
                used,
                makespan,
                throughput,
                throughput / ideal,
                throughput / limit,
                steady,
                steady / ideal,
                steady / limit,
            )
        )
    report(
        f"Scaling, {args.shape} shape (T = {args.time * 1000:.0f} ms per job, "
        f"{args.slots} slots per backend)",
        [
            "backends",
            "jobs",
            "used",
            "makespan s",
            "jobs/s",
            "of K/T",
            "of K/T measured",
            "steady jobs/s",
            "steady of K/T",
            "steady of K/T measured",
        ],
        rows,
        [
            f"T measured = {measured * 1000:.0f} ms: one job straight on an idle fake ComfyUI (sampler steps plus "
            "the other nodes). jobs/s = jobs / makespan (ramp-up included); steady = (jobs - K) / (time from the "
            "K-th completion to the last). Target: >= 0.95 of ideal at 8 backends."
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backends", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--time", type=float, default=1.0, help="T in seconds")
    parser.add_argument("--per-backend", type=int, default=10, help="jobs per backend")
    parser.add_argument("--slots", type=int, default=2)
    add_shape_argument(parser)
