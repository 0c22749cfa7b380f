"""The CLI as a user drives it: real processes, real ports, nothing in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.graphs import image_graph, sampler_graph

ATELIER = [sys.executable, "-m", "atelier"]


def _wait_ready(url: str, process: subprocess.Popen[str], path: str = "/ready") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"process exited: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*ATELIER, "serve", "--demo", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


def _cli(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATELIER_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [*ATELIER, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_demo_submit_wait_jobs_backends(demo_server: str, tmp_path: Path) -> None:
    info = httpx.get(demo_server + "/").json()
    assert info["demo"] is True and "DEMO MODE" in info["notice"]
    graph_file = tmp_path / "graph.json"
    graph_file.write_text(json.dumps(sampler_graph(steps=5)))
    result = _cli(demo_server, "submit", "--graph", str(graph_file), "--wait")
    assert result.returncode == 0, result.stderr + result.stdout
    job_id = result.stdout.splitlines()[0].strip()
    assert "completed" in result.stdout and "image" in result.stdout
    job = httpx.get(f"{demo_server}/api/v1/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["outputs"][0]["content_type"] == "image/png"

    listing = _cli(demo_server, "jobs")
    assert listing.returncode == 0 and job_id in listing.stdout and "completed" in listing.stdout
    backends = _cli(demo_server, "backends")
    assert backends.returncode == 0 and "demo" in backends.stdout and "up" in backends.stdout
    watched = _cli(demo_server, "watch", job_id)
    assert watched.returncode == 0 and "completed" in watched.stdout


def test_submit_of_an_invalid_graph_says_what_is_wrong(demo_server: str, tmp_path: Path) -> None:
    graph = image_graph()
    graph["2"]["class_type"] = "NoSuchNode"
    graph_file = tmp_path / "bad.json"
    graph_file.write_text(json.dumps(graph))
    result = _cli(demo_server, "submit", "--graph", str(graph_file))
    assert result.returncode == 1
    assert "NoSuchNode" in result.stderr and "node 2" in result.stderr


def test_cancel_from_the_cli(demo_server: str, tmp_path: Path) -> None:
    graph_file = tmp_path / "long.json"
    graph_file.write_text(json.dumps(sampler_graph(steps=400)))
    submitted = _cli(demo_server, "submit", "--graph", str(graph_file))
    job_id = submitted.stdout.strip()
    result = _cli(demo_server, "cancel", job_id)
    assert result.returncode == 0 and job_id in result.stdout
    deadline = time.monotonic() + 30
    while httpx.get(f"{demo_server}/api/v1/jobs/{job_id}").json()["status"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_fake_comfyui_and_serve_as_separate_processes(tmp_path: Path) -> None:
    comfy_port, port = free_port(), free_port()
    fake = subprocess.Popen(
        [
            *ATELIER,
            "fake-comfyui",
            "--port",
            str(comfy_port),
            "--step-time",
            "0.01",
            "--root-dir",
            str(tmp_path / "comfy"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    server = subprocess.Popen(
        [
            *ATELIER,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--backend",
            f"gpu0=http://127.0.0.1:{comfy_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        response = httpx.post(
            f"{url}/api/v1/jobs",
            json={"graph": image_graph()},
            headers={"Prefer": "wait=30"},
            timeout=40,
        )
        assert response.status_code == 200 and response.json()["status"] == "completed"
        assert response.json()["backend"] == "gpu0"
    finally:
        for process in (server, fake):
            process.terminate()
            process.wait(timeout=30)
        if server.stdout:
            server.stdout.close()
