"""The CLI's first ten minutes, as a newcomer meets them: real processes, real ports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import free_port
from tests.e2e.test_cli import ATELIER, _cli, _wait_ready

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `atelier serve --demo` for this module's tests (starting one takes seconds)."""
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    process = subprocess.Popen(
        [*ATELIER, "serve", "--demo", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_submit_a_workflow_with_params_and_read_the_urls(demo_server: str, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photo)
    result = _cli(
        demo_server,
        "submit",
        "--workflow",
        "resize",
        "--param",
        f"image=@{photo}",
        "--param",
        "width=20",
        "--param",
        "height=10",
        "--wait",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    job_id = lines[0].strip()
    urls = [line for line in lines if line.startswith("http")]
    assert len(urls) == 1 and urls[0].strip() == urls[0]  # alone on its line, whole
    image = Image.open(__import__("io").BytesIO(httpx.get(urls[0]).content))
    assert image.size == (20, 10)
    job = httpx.get(f"{demo_server}/api/v1/jobs/{job_id}").json()
    assert job["workflow"] == "resize" and job["params"]["width"] == 20

    prompt = _cli(
        demo_server,
        "submit",
        "--workflow",
        "txt2img_sd15",
        "--param",
        "prompt=a fox",
        "--param",
        "steps=2",
        "--wait",
    )
    assert prompt.returncode == 0, prompt.stderr + prompt.stdout
    assert "completed" in prompt.stdout


def test_a_bad_param_names_the_field(demo_server: str) -> None:
    result = _cli(demo_server, "submit", "--workflow", "txt2img_sd15", "--param", "steps=0")
    assert result.returncode == 1
    assert "steps" in result.stderr and "minimum" in result.stderr
    neither = _cli(demo_server, "submit")
    assert neither.returncode == 1 and "--workflow" in neither.stderr


def test_jobs_never_cut_ids_even_on_a_narrow_terminal(demo_server: str, tmp_path: Path) -> None:
    graph = tmp_path / "g.json"
    graph.write_text(
        json.dumps(
            {
                "1": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
                },
                "2": {
                    "class_type": "SaveImage",
                    "inputs": {"images": ["1", 0], "filename_prefix": "x"},
                },
            }
        )
    )
    job_id = _cli(demo_server, "submit", "--graph", str(graph)).stdout.strip()
    narrow = subprocess.run(
        [*ATELIER, "jobs"],
        env={**__import__("os").environ, "ATELIER_URL": demo_server, "COLUMNS": "60"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert narrow.returncode == 0, narrow.stderr
    assert job_id in narrow.stdout
    assert all(len(match) == 36 for match in UUID.findall(narrow.stdout))


def test_watch_of_an_unknown_id_is_one_404_line(demo_server: str) -> None:
    result = _cli(demo_server, "watch", "00000000-0000-0000-0000-000000000000")
    assert result.returncode == 1
    assert result.stdout == ""  # no bar
    assert "404" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_server_that_is_down_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["jobs"], ["watch", "x"], ["backends"]):
        result = _cli(url, *args, timeout=30)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "cannot reach Atelier" in lines[0] and "Traceback" not in result.stderr
