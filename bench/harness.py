"""What every benchmark needs: an Atelier server in its own process, fake ComfyUI
backends (each in a thread of its own, like a separate process), and measuring helpers."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from atelier.testing import ThreadedFakeComfyUI, graphs

console = Console(width=160)


# Completion times (seconds after the first submit) of the last submit_and_wait call.
LAST_COMPLETIONS: list[float] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sampler_graph(
    seed: int, *, steps: int, checkpoint: str = "v1-5-pruned-emaonly.safetensors"
) -> dict[str, Any]:
    """txt2img; the fake simulates its models (steps x step_time) and writes a 64x64 PNG."""
    return graphs.sampler_graph(
        seed=seed, steps=steps, checkpoint=checkpoint, text="bench", prefix="bench"
    )


class FakeProcess:
    """``python -m atelier fake-comfyui`` in a process of its own, as a real ComfyUI is."""

    def __init__(
        self,
        root: Path,
        *,
        step_time: float = 0.0,
        node_time: float = 0.0,
        model_load_time: float = 0.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-m",
            "atelier",
            "fake-comfyui",
            "--port",
            str(self.port),
            "--root-dir",
            str(root),
            "--step-time",
            str(step_time),
            "--node-time",
            str(node_time),
            "--model-load-time",
            str(model_load_time),
            *extra_args,
        ]
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL, like a GPU box losing power; `start()` boots it again on the same port."""
        self.process.kill()
        self.process.wait(timeout=10)

    def start(self) -> None:
        self.process = self._spawn()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/system_stats", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("fake ComfyUI did not start")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/fake/stats", timeout=5).json()
        return result

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def fakes(count: int, **timing: float) -> Iterator[list[FakeProcess]]:
    root = Path(tempfile.mkdtemp(prefix="bench-comfy-"))
    started = [FakeProcess(root / f"f{index}", **timing) for index in range(count)]
    try:
        for fake in started:
            fake.wait_ready()
        yield started
    finally:
        for fake in started:
            fake.close()


@contextmanager
def threaded_fake(**kwargs: Any) -> Iterator[ThreadedFakeComfyUI]:
    """A fake in this process's threads, for scenarios that observe its internals."""
    with ThreadedFakeComfyUI(
        root_dir=Path(tempfile.mkdtemp(prefix="bench-comfy-")), **kwargs
    ) as fake:
        yield fake


class AtelierProcess:
    """``python -m atelier serve`` on a free port, with its own data dir."""

    def __init__(
        self,
        backends: Sequence[str],
        *,
        database_url: str | None = None,
        data_dir: Path | None = None,
        log_file: Path | None = None,
        ready_timeout: float = 60.0,
        **env: Any,
    ) -> None:
        self.ready_timeout = ready_timeout
        # Without a log file stderr is a pipe read only on a failed start: keep logs quiet.
        self.log_file = log_file
        self.port = free_port()
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="bench-atelier-"))
        self.database_url = database_url
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-m",
            "atelier",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        for backend in backends:
            self.command += ["--backend", backend]
        if database_url:
            self.command += ["--database-url", database_url]
        self.env = {**os.environ, **{f"ATELIER_{k.upper()}": str(v) for k, v in env.items()}}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AtelierProcess:
        if self.log_file is not None:
            with self.log_file.open("ab") as log:
                self.process = subprocess.Popen(
                    self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=log
                )
        else:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if self.log_file is not None:
                    raise RuntimeError(f"atelier exited: {self.log_file.read_text()[-2000:]}")
                raise RuntimeError(f"atelier exited: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("atelier did not become ready")

    def kill(self) -> None:
        """SIGKILL; entering again starts it on the same port and data."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat, fields 14-15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def submit_and_wait(
    url: str,
    graphs: Sequence[dict[str, Any]],
    *,
    headers: Sequence[dict[str, str]] | None = None,
    timeout: float = 600,
    concurrency: int = 8,
) -> tuple[float, list[dict[str, Any]]]:
    """Submit every graph at once (``concurrency`` requests in flight, in order as far as
    that allows); return the makespan (first submit to last completion) and the jobs."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        done: dict[str, float] = {}
        async with client.stream(
            "GET", "/api/v1/events", timeout=httpx.Timeout(60, read=None)
        ) as stream:
            started = time.perf_counter()
            gate = asyncio.Semaphore(concurrency)

            async def one(index: int, graph: dict[str, Any]) -> str:
                async with gate:
                    response = await client.post(
                        "/api/v1/jobs",
                        json={"graph": graph},
                        headers=(headers[index] if headers else {}),
                    )
                    response.raise_for_status()
                    return str(response.json()["id"])

            # The stream is read while the submits go on: an end is timed when it
            # arrives, not when the last submit returns (a slow submit burst would
            # otherwise stamp every early completion with the burst's end).
            submitted: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()

            async def follow() -> None:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        if event["type"] in ("completed", "failed", "cancelled"):
                            done.setdefault(event["job_id"], time.perf_counter())
                            if submitted.done() and submitted.result() <= done.keys():
                                return

            following = asyncio.create_task(follow())
            ids = list(await asyncio.gather(*(one(i, g) for i, g in enumerate(graphs))))
            wanted = set(ids)
            submitted.set_result(wanted)
            if not wanted <= done.keys():
                await asyncio.wait_for(following, timeout)
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            done = {job_id: at for job_id, at in done.items() if job_id in wanted}
        makespan = max(done.values()) - started
        LAST_COMPLETIONS[:] = sorted(t - started for t in done.values())
        jobs = []
        for job_id in ids:
            jobs.append(
                (
                    await client.get(
                        f"/api/v1/jobs/{job_id}", headers=headers[0] if headers else {}
                    )
                ).json()
            )
    return makespan, jobs


async def direct_makespan(fake_url: str, graphs: Sequence[dict[str, Any]]) -> float:
    """The same prompts queued straight into ComfyUI at once: the physical limit."""
    import websockets

    client_id = "bench-direct"
    ws_url = fake_url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
    async with (
        websockets.connect(ws_url, max_size=None) as socket_,
        httpx.AsyncClient(base_url=fake_url) as client,
    ):
        started = time.perf_counter()
        ids = []
        for graph in graphs:
            response = await client.post("/prompt", json={"prompt": graph, "client_id": client_id})
            response.raise_for_status()
            ids.append(response.json()["prompt_id"])
        pending = set(ids)
        while pending:
            message = await socket_.recv()
            if isinstance(message, bytes):
                continue
            data = json.loads(message)
            if data["type"] == "executing" and data["data"].get("node") is None:
                pending.discard(data["data"].get("prompt_id"))
        return time.perf_counter() - started


def machine() -> str:
    return f"{platform.node()} ({os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()})"


def report(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()
) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    for note in notes:
        console.print(note)
    console.print(f"machine: {machine()}, date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    console.print(
        "reproduce: " + shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])
    )


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
