"""Start-up cost: importing and building the app as ``atelier serve`` does, each run in a
fresh interpreter (CPU and wall seconds, RSS after the build, modules loaded), for this
tree and, with ``--against DIR``, another checkout's ``src`` interleaved with it, so the
ratio holds on a busy machine."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import report

BUILD = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
import atelier.cli
from atelier.app import create_app
from atelier.settings import Settings
create_app(Settings())
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
rss = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
print(json.dumps({"wall": wall, "cpu": cpu, "rss": rss, "modules": len(sys.modules)}))
"""


def build_once(src: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(src.parent)])
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        env["ATELIER_DATA_DIR"] = folder
        out = subprocess.run(
            [sys.executable, "-c", BUILD], env=env, cwd=folder, capture_output=True, text=True
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace) -> None:
    trees = {"this tree": Path(__file__).resolve().parents[1] / "src"}
    if args.against:
        trees[str(args.against)] = Path(args.against).resolve() / "src"
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, src in trees.items():
            runs[name].append(build_once(src))
    rows = []
    for name, results in runs.items():
        rows.append(
            [
                name,
                statistics.median(r["cpu"] for r in results),
                statistics.median(r["wall"] for r in results),
                statistics.median(r["rss"] for r in results),
                int(statistics.median(r["modules"] for r in results)),
            ]
        )
    report(
        "Start-up: import and build the app (medians)",
        ["tree", "CPU s", "wall s", "RSS MiB", "modules"],
        rows,
        [f"{args.repeat} runs per tree, interleaved; load average {os.getloadavg()}"],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", help="another checkout (its src/) to compare with")
