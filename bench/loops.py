"""The event loop under saturation: the bare app of ``bench api`` made to spend a fixed
CPU time on every answer (about what a status answer costs Atelier), loaded by ``wrk``
at 64 connections, on uvloop and on asyncio's own loop. The rates come out alike; the
tails do not: uvloop takes new requests off the sockets before it finishes the ones it
has (MagicStack/uvloop#123), so under saturation some answers wait many times the
median. This is why ``atelier serve`` runs on asyncio's loop (``event_loop`` setting)."""

from __future__ import annotations

import argparse
import statistics

from bench import wrk
from bench.api import bare_uvicorn
from bench.harness import report


def run(args: argparse.Namespace) -> None:
    rows = []
    for loop in args.loops:
        loads = []
        for _ in range(args.repeat):
            with bare_uvicorn(loop, args.busy_us) as url:
                wrk.run(url, ["/"], connections=args.connections, seconds=1)  # warm up
                loads.append(
                    wrk.run(url, ["/"], connections=args.connections, seconds=args.seconds)
                )
        p50 = statistics.median(load.p50_ms for load in loads)
        p99 = statistics.median(load.p99_ms for load in loads)
        rows.append(
            (
                loop,
                args.busy_us,
                round(statistics.median(load.rate for load in loads)),
                p50,
                p99,
                f"{min(load.p99_ms for load in loads):.1f}..{max(load.p99_ms for load in loads):.1f}",
                p99 / p50,
            )
        )
    report(
        f"One saturated core: {args.connections} connections, every answer "
        f"{args.busy_us:g} us of CPU (medians of {args.repeat} rounds of {args.seconds:g} s)",
        ["loop", "CPU us/answer", "req/s", "p50 ms", "p99 ms", "p99 range", "p99 / p50"],
        rows,
        [f"load: {wrk.WRK} -t1 -c{args.connections} -d{args.seconds:g}s --latency"],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loops", nargs="+", default=["uvloop", "asyncio"])
    parser.add_argument("--busy-us", type=float, default=300.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
