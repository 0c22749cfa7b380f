"""Structured logs: one JSON object per line, and the job's id and backend on every line
written on a job's behalf."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atelier import logs
from tests.graphs import image_graph
from tests.helpers import job_reaches, submit


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.JobFields())
    logger = logging.getLogger("atelier")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


async def test_every_line_about_a_job_names_it(
    server_factory: Any, fake: Any, tmp_path: Path, json_lines: io.StringIO
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", [f"gpu0={fake.url}"])
    async with server.client() as client:
        job = await submit(client, image_graph(size=8))
        await job_reaches(client, job["id"], "completed")
        bad = image_graph(size=9)  # not the cached graph: ImageInvert runs again
        fake.fail_node("ImageInvert", "RuntimeError", "boom")
        failing = await submit(client, bad)
        await job_reaches(client, failing["id"], "failed")
    lines = parsed(json_lines)
    about = [line for line in lines if line["logger"] == "atelier.runner"]
    assert {"submitted", "completed"} <= {line["message"].split()[0] for line in about}
    for line in about:
        assert line["backend"] == "gpu0" and line["attempt"] == 1, line
        assert line["job_id"] in (job["id"], failing["id"])
        assert line["level"] in ("info", "warning") and line["time"].endswith("+00:00")
    failed = [line for line in about if line["job_id"] == failing["id"]]
    assert any(line["message"].startswith("failed: node_error") for line in failed)
    # Lines about no job carry no job fields.
    assert all("job_id" not in line for line in lines if line["logger"] == "atelier.backends")


async def test_the_context_reaches_tasks_started_inside_it(json_lines: io.StringIO) -> None:
    async def child() -> None:
        logging.getLogger("atelier.comfyui").info("from a child task")

    with logs.job_context(job_id="j1", backend="b1"):
        await asyncio.create_task(child())
    logging.getLogger("atelier.other").info("outside")
    inside, outside = parsed(json_lines)
    assert (inside["job_id"], inside["backend"]) == ("j1", "b1")
    assert "job_id" not in outside and outside["message"] == "outside"


def test_text_format_appends_the_job_fields() -> None:
    record = logging.LogRecord("atelier.runner", logging.INFO, __file__, 1, "hello", (), None)
    record.job_id, record.backend = "j1", "b1"
    assert logs.TextFormatter().format(record).endswith("hello [job_id=j1 backend=b1]")
