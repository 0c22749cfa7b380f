"""Scenario 8, chaos: N jobs of a mix of workflows over fake backends in processes of
their own, while a driver SIGKILLs and restarts backends, SIGKILLs Atelier and starts it
on the same data, drops ComfyUI WebSockets, makes /view slow, makes a backend answer 500s
or hang for a while, and (on PostgreSQL, a private cluster) restarts the database.

At the end it counts every job (completed, failed by error type, stuck, lost), duplicate
executions from the fakes' own execution logs, every output downloaded and hashed, and
every SSE client's ids against the events table; see docs/CHAOS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from atelier.testing.faults import read_execution_log
from atelier.testing.postgres import PrivatePostgres
from bench import chaos_checks as checks
from bench.chaos_checks import Counts, Fault
from bench.chaos_workload import StreamWatcher, Submission, job_mix, submit
from bench.harness import AtelierProcess, FakeProcess, report

FAULTS = ["kill_backend", "kill_atelier", "drop_websockets", "slow_view", "errors", "hang"]

# Quick failure detection, a high attempt cap (kills are many, each job must end well),
# and no per-caller limits: the run is one caller flooding on purpose.
SERVER_SETTINGS = {
    "health_interval": 0.5,
    "health_timeout": 3.0,
    "poll_interval": 0.5,
    "check_interval": 0.5,
    "backend_lost_timeout": 4.0,
    "max_attempts": 10,
    "progress_interval": 0.2,
    "rate_limit_per_minute": 0,
    "max_queued_per_owner": 0,
}


@dataclass
class ChaosConfig:
    jobs: int = 1000
    backends: int = 4
    database: str = "sqlite"  # or "postgres" (a private cluster the run may restart)
    seed: int = 7
    rounds: int = 0  # each fault this many times; 0: keep cycling until the jobs are done
    fault_interval: float = 4.0  # seconds between the start of one fault and the next
    submit_seconds: float = 60.0  # submits are spread over this long
    step_time: float = 0.03  # per simulated sampler step on the fakes
    global_watchers: int = 3  # SSE clients on /api/v1/events
    job_watchers: int = 30  # SSE clients each following one job
    timeout: float = 1200.0
    keep: bool = False  # keep the work directory (logs, databases) afterwards


@dataclass
class ChaosResult:
    config: ChaosConfig
    counts: Counts
    faults: list[Fault]
    usage: dict[str, tuple[float, int]]
    seconds: float
    workdir: Path
    notes: list[str] = field(default_factory=list)


def run_chaos(config: ChaosConfig) -> ChaosResult:
    return asyncio.run(_Run(config).run())


class _Run:
    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.faults: list[Fault] = []
        self.usage: dict[str, tuple[float, int]] = {}
        self.postgres: PrivatePostgres | None = None
        self.fakes: list[FakeProcess] = []
        self.atelier: AtelierProcess | None = None
        self.work_done = asyncio.Event()
        self.stop = asyncio.Event()
        self.phases: list[tuple[str, float]] = []  # (what, seconds since the first submit)
        self._t0 = 0.0

    def _phase(self, name: str) -> None:
        self.phases.append((name, time.monotonic() - self._t0))

    async def run(self) -> ChaosResult:
        started = time.monotonic()
        try:
            counts = await self._run()
        finally:
            await asyncio.to_thread(self._close)
        result = ChaosResult(
            self.config, counts, self.faults, self.usage, time.monotonic() - started, self.workdir
        )
        result.notes.append(
            "timeline (s after the first submit): "
            + ", ".join(f"{name} {at:.0f}" for name, at in self.phases)
        )
        if not counts.defects() and not counts.failed and not self.config.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return result

    def _start_processes(self) -> None:
        config = self.config
        database_url = None
        if config.database == "postgres":
            self.postgres = PrivatePostgres()
            self.postgres.start()
            database_url = self.postgres.url
        for index in range(config.backends):
            name = f"gpu{index}"
            fake = FakeProcess(
                self.workdir / name,
                step_time=config.step_time,
                extra_args=["--name", name, "--execution-log", str(self.workdir / f"{name}.log")],
            )
            self.fakes.append(fake)
        for fake in self.fakes:
            fake.wait_ready()
        self.atelier = AtelierProcess(
            [f"gpu{i}={fake.url}" for i, fake in enumerate(self.fakes)],
            database_url=database_url,
            data_dir=self.workdir / "atelier",
            log_file=self.workdir / "atelier.log",
            **SERVER_SETTINGS,
        )
        self.atelier.__enter__()

    def _close(self) -> None:
        if self.atelier is not None and self.atelier.process is not None:
            self.atelier.__exit__(None, None, None)
        for fake in self.fakes:
            if fake.process.poll() is None:
                fake.close()
        if self.postgres is not None:
            self.postgres.close()

    async def _run(self) -> Counts:
        await asyncio.to_thread(self._start_processes)
        assert self.atelier is not None
        self.usage["start"] = checks.process_usage(self.atelier.pid)
        config = self.config
        specs = job_mix(config.jobs, config.seed)
        submissions = [Submission(spec, f"chaos-{config.seed}-{i}") for i, spec in enumerate(specs)]
        watch_every = max(1, config.jobs // max(1, config.job_watchers))
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        async with httpx.AsyncClient(
            base_url=self.atelier.url, timeout=30, limits=limits
        ) as client:
            watchers = [StreamWatcher("/api/v1/events") for _ in range(config.global_watchers)]
            tasks = [asyncio.create_task(w.run(client, self.stop)) for w in watchers]
            faults = asyncio.create_task(self._drive_faults())
            deadline = time.monotonic() + config.timeout
            gate = asyncio.Semaphore(8)

            async def one(index: int, item: Submission) -> None:
                await asyncio.sleep(index * config.submit_seconds / max(1, config.jobs))
                async with gate:
                    await submit(client, item, deadline)
                if item.job_id and index % watch_every == 0:
                    watcher = StreamWatcher(f"/api/v1/jobs/{item.job_id}/events", item.job_id)
                    watchers.append(watcher)
                    tasks.append(asyncio.create_task(watcher.run(client, self.stop)))

            self._t0 = time.monotonic()
            await asyncio.gather(*(one(i, s) for i, s in enumerate(submissions)))
            self._phase("all accepted")
            await self._wait_until_idle(client, deadline)
            self._phase("all finished")
            self.work_done.set()
            await faults
            self._phase("faults over")
            await self._wait_until_idle(client, deadline)  # what the last fault disturbed
            await self._settle_watchers(watchers, deadline)
            self._phase("streams settled")
            self.stop.set()
            for task in tasks:
                task.cancel()  # the all-jobs streams never end by themselves
            await asyncio.gather(*tasks, return_exceptions=True)

            counts = Counts()
            views = await checks.job_fates(client, submissions, counts)
            executions = [e for fake in self.fakes for e in self._log(fake)]
            checks.duplicates(views, executions, self.faults, counts)
            expected = {s.job_id: s.spec.outputs for s in submissions if s.job_id}
            await checks.outputs(client, views, expected, counts)
            events = await checks.persisted_events(self._database_url(), self.atelier.data_dir)
            checks.streams(watchers, events, views, counts)
            self._phase("counted")
        await asyncio.sleep(1.0)  # the server closes the run's connections
        self.usage["end"] = checks.process_usage(self.atelier.pid)
        return counts

    def _log(self, fake: FakeProcess) -> list[checks.Execution]:
        name = fake.command[fake.command.index("--name") + 1]
        return list(read_execution_log(self.workdir / f"{name}.log"))

    def _database_url(self) -> str:
        return self.postgres.url if self.postgres is not None else "sqlite"

    async def _wait_until_idle(self, client: httpx.AsyncClient, deadline: float) -> None:
        """Until no job of this run is queued or running (or the deadline)."""
        while time.monotonic() < deadline:
            try:
                busy = 0
                for status in ("queued", "running"):
                    response = await client.get(
                        "/api/v1/jobs", params={"status": status, "limit": 1}
                    )
                    response.raise_for_status()
                    busy += len(response.json()["items"])
                if busy == 0:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1.0)

    async def _settle_watchers(self, watchers: list[StreamWatcher], deadline: float) -> None:
        """Give every SSE client time to receive the last events (30 s at most)."""
        assert self.atelier is not None
        events = await checks.persisted_events(self._database_url(), self.atelier.data_dir)
        newest = max(events, default=0)
        until = min(deadline, time.monotonic() + 30)
        while time.monotonic() < until:
            if all(
                w.finished if w.job_id else (max(w.received, default=0) >= newest) for w in watchers
            ):
                return
            await asyncio.sleep(0.5)

    # -- the fault driver ---------------------------------------------------------------

    def _fault_kinds(self) -> list[str]:
        kinds = list(FAULTS)
        if self.postgres is not None:
            kinds.append("restart_postgres")
        return kinds

    async def _drive_faults(self) -> None:
        config = self.config
        rounds = 0
        while True:
            order = self._fault_kinds()
            self.rng.shuffle(order)
            for kind in order:
                await asyncio.sleep(config.fault_interval)
                await self._inject(kind)
            rounds += 1
            if config.rounds and rounds >= config.rounds:
                return
            if not config.rounds and self.work_done.is_set():
                return

    async def _inject(self, kind: str) -> None:
        assert self.atelier is not None
        fake = self.rng.choice(self.fakes)
        target = fake.command[fake.command.index("--name") + 1]
        start = time.time()
        if kind == "kill_backend":
            await asyncio.to_thread(fake.kill)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(fake.start)
        elif kind == "kill_atelier":
            target = "atelier"
            await asyncio.to_thread(self.atelier.kill)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.atelier.__enter__)
            self.usage["restarted"] = checks.process_usage(self.atelier.pid)
        elif kind == "restart_postgres":
            assert self.postgres is not None
            target = "postgres"
            await asyncio.to_thread(self.postgres.restart, 1.5)
        else:
            body, lasts = {
                "drop_websockets": ({"drop_websockets": True}, 0.0),
                "slow_view": ({"view_delay": 1.5, "for_seconds": 6}, 6.0),
                "errors": ({"errors": True, "for_seconds": 5}, 5.0),
                "hang": ({"hang": True, "for_seconds": 6}, 6.0),
            }[kind]
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(f"{fake.url}/fake/fault", json=body)
                response.raise_for_status()
            self.faults.append(Fault(kind, target, start, start + lasts))
            return
        self.faults.append(Fault(kind, target, start, time.time()))


def print_result(result: ChaosResult) -> None:
    c = result.counts
    config = result.config
    failed = ", ".join(f"{k}: {v}" for k, v in sorted(c.failed.items())) or "-"
    rejected = ", ".join(f"{k}: {v}" for k, v in sorted(c.rejected.items())) or "-"
    injected: dict[str, int] = {}
    for fault in result.faults:
        injected[fault.kind] = injected.get(fault.kind, 0) + 1
    rows = [
        ("jobs accepted", c.accepted, f"of {config.jobs} submitted"),
        ("rejected at submit", sum(c.rejected.values()), rejected),
        ("completed", c.completed, ""),
        ("failed", sum(c.failed.values()), failed),
        ("cancelled", c.cancelled, ""),
        ("stuck (not finished)", len(c.stuck), "must be 0"),
        ("lost (accepted, then gone)", len(c.lost), "must be 0"),
        ("prompt executions (fakes' logs)", c.executions, f"{c.unknown_prompts} of no job"),
        ("extra executions, backend died", c.extra_explained, "allowed"),
        ("extra executions, otherwise", len(c.extra_unexplained), "must be 0"),
        ("outputs downloaded and hashed", c.outputs_checked, ""),
        ("outputs missing or wrong", len(c.outputs_bad), "must be 0"),
        ("SSE streams checked", c.streams, f"{c.stream_reconnects} reconnects"),
        ("SSE streams that missed an event", len(c.streams_missed), "must be 0"),
        ("SSE events delivered out of id order", c.stream_out_of_order, "allowed"),
        ("SSE events delivered again after a reconnect", c.stream_repeats, "allowed"),
    ]
    for label, key in (("start", "start"), ("after last restart", "restarted"), ("end", "end")):
        if key in result.usage:
            rss, fds = result.usage[key]
            rows.append((f"server RSS MiB / open fds, {label}", f"{rss:.0f} / {fds}", ""))
    faults = ", ".join(f"{k} x{v}" for k, v in sorted(injected.items()))
    report(
        f"Chaos: {config.jobs} jobs, {config.backends} backends, {config.database}",
        ["what", "count", "note"],
        rows,
        [
            f"faults injected: {faults}",
            *result.notes,
            f"took {result.seconds:.0f} s; verdict: "
            + ("PASS" if not c.defects() else "FAIL: " + "; ".join(c.defects())),
            *[f"  {line}" for line in (c.lost + c.stuck)[:10]],
            *[f"  {line}" for line in c.extra_unexplained[:10]],
            *[f"  {line}" for line in c.outputs_bad[:10]],
            *[f"  {line}" for line in c.streams_missed[:10]],
            *([f"work directory kept: {result.workdir}"] if result.workdir.exists() else []),
        ],
    )


def run(args: argparse.Namespace) -> None:
    failed = False
    for database in args.database:
        config = ChaosConfig(
            jobs=args.jobs,
            backends=args.backends,
            database=database,
            seed=args.seed,
            rounds=args.rounds,
            fault_interval=args.fault_interval,
            submit_seconds=args.submit_seconds,
            keep=args.keep,
        )
        result = run_chaos(config)
        print_result(result)
        failed = failed or bool(result.counts.defects())
    if failed:
        sys.exit(1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--backends", type=int, default=4)
    parser.add_argument(
        "--database", choices=["sqlite", "postgres"], nargs="+", default=["sqlite", "postgres"]
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=0, help="0: cycle faults until done")
    parser.add_argument("--fault-interval", type=float, default=4.0)
    parser.add_argument("--submit-seconds", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
