"""python -m bench <scenario> [options]; python -m bench --help lists the scenarios."""

from __future__ import annotations

import argparse
import importlib

SCENARIOS = {
    "overhead": "Scenario 1: dispatch overhead vs ComfyUI alone",
    "scaling": "Scenario 2: 1, 2, 4, 8 backends vs the ideal K/T",
    "affinity": "Scenario 3: model switches with affinity on, off, round robin",
    "fairness": "Scenario 4: one owner floods, another's wait with fair share on/off",
    "api": "Scenario 5: submit and status throughput and latency, SQLite and PostgreSQL",
    "loops": "Scenario 5b: uvloop vs asyncio's loop, one core saturated: rate and tail",
    "progress": "Scenario 6: progress latency from ComfyUI to an SSE client",
    "memory": "Scenario 7: server memory with 100,000 jobs and a 200 MB download",
    "startup": "Start-up cost: import and build the app, CPU, RSS, modules",
    "hostile": "Hostile input across the API: 4xx problems only, latency, peak RSS",
    "chaos": "Scenario 8: kills, dropped sockets, 500s, a database restart; every job counted",
    "join": "Studio: joining video segments with PyAV, time and peak memory",
    "segments": "Studio: makespan of a 10-segment video on 1 vs 4 backends",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="scenario", required=True)
    for name, help_text in SCENARIOS.items():
        module = importlib.import_module(f"bench.{name}")
        scenario = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(scenario)
        scenario.set_defaults(run=module.run)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
