"""Scenario 3, model affinity: a mixed workload of two checkpoints on two backends that
charge a model-load time whenever the checkpoint changes. Model switches and makespan
with affinity on, off, and plain round robin."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random

from bench.cluster import add_shape_argument, server
from bench.harness import fakes, report, sampler_graph, submit_and_wait

CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"]
STEPS = 5
seeds = itertools.count(50_000)

MODES = {
    "affinity on": {"affinity": "true"},
    "affinity off": {"affinity": "false"},
    "round robin": {"scheduler": "round_robin"},
}


def run(args: argparse.Namespace) -> None:
    rows = []
    baseline = None
    for mode, settings in MODES.items():
        with fakes(2, step_time=args.time / STEPS, model_load_time=args.load_time) as backends:
            urls = [f"gpu{i}={fake.url}" for i, fake in enumerate(backends)]
            with server(args.shape, urls, **settings) as atelier:
                mix = random.Random(args.seed)
                graphs = [
                    sampler_graph(next(seeds), steps=STEPS, checkpoint=mix.choice(CHECKPOINTS))
                    for _ in range(args.jobs)
                ]
                makespan, jobs = asyncio.run(submit_and_wait(atelier.url, graphs, concurrency=1))
            switches = sum(fake.stats()["model_switches"] for fake in backends)
        assert all(j["status"] == "completed" for j in jobs)
        baseline = baseline or makespan
        rows.append((mode, args.jobs, switches, makespan, makespan / baseline))
    report(
        f"Model affinity ({args.shape} shape, 2 backends, T = {args.time * 1000:.0f} ms, model load = {args.load_time * 1000:.0f} ms, "
        f"checkpoints A or B at random, seed {args.seed})",
        ["scheduler", "jobs", "model switches", "makespan s", "vs affinity on"],
        rows,
        [
            "model switches = checkpoint loads that charged the load time, summed over both backends "
            "(the first load on each counts)"
        ],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--time", type=float, default=0.2, help="T in seconds")
    parser.add_argument("--load-time", type=float, default=0.5, help="model load time in seconds")
    parser.add_argument("--seed", type=int, default=7, help="seed of the checkpoint mix")
    add_shape_argument(parser)
