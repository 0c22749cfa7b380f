"""Atelier killed (SIGKILL) in the middle of a pipeline run, then started again on the
same data: the run finishes, and no step that had finished runs again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.test_cli import _wait_ready

ATELIER = [sys.executable, "-m", "atelier"]


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            *ATELIER,
            "fake-comfyui",
            "--port",
            str(port),
            "--step-time",
            "0.1",
            "--root-dir",
            str(tmp_path / "comfy"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, "/system_stats")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _serve(data: Path, port: int, comfy: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ATELIER_BACKEND_SLOTS": "1",
        "ATELIER_STUDIO_RESYNC_INTERVAL": "0.5",
        "ATELIER_POLL_INTERVAL": "0.5",
        "ATELIER_CHECK_INTERVAL": "0.3",
    }
    return subprocess.Popen(
        [
            *ATELIER,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--backend",
            f"gpu={comfy}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _wait(check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_killed_mid_run_then_restarted_finishes_without_rerunning(
    tmp_path: Path, comfy: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = _serve(tmp_path / "data", port, comfy)
    try:
        _wait_ready(url, first)
        run = httpx.post(
            f"{url}/api/v1/pipelines/character_sheet/runs",
            json={
                "params": {
                    "prompt": "a fox",
                    "poses": 5,
                    "width": 64,
                    "height": 64,
                    "steps": 15,
                    "review": "none",
                }
            },
        ).json()

        def midway() -> Any:
            body = httpx.get(f"{url}/api/v1/runs/{run['id']}").json()
            statuses = [s["status"] for s in body["steps"]]
            return body if statuses.count("completed") >= 2 and "running" in statuses else None

        before = _wait(midway)
    finally:
        first.send_signal(signal.SIGKILL)  # no shutdown at all
        first.wait(timeout=30)
    finished = {s["name"]: s["job_id"] for s in before["steps"] if s["status"] == "completed"}

    second = _serve(tmp_path / "data", port, comfy)
    try:
        _wait_ready(url, second)

        def done() -> Any:
            body = httpx.get(f"{url}/api/v1/runs/{run['id']}").json()
            return body if body["status"] in ("completed", "failed", "cancelled") else None

        after = _wait(done)
        assert after["status"] == "completed", after
        steps = {s["name"]: s for s in after["steps"]}
        for name, job_id in finished.items():
            assert steps[name]["job_id"] == job_id
        assert all(s["tries"] == 1 and len(s["jobs"]) == 1 for s in after["steps"])
        jobs = httpx.get(f"{url}/api/v1/jobs", params={"label": f"run:{run['id']}"}).json()
        assert len(jobs["items"]) == 5 and {j["status"] for j in jobs["items"]} == {"completed"}
    finally:
        second.terminate()
        second.wait(timeout=30)
