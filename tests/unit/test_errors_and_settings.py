from pathlib import Path

import pytest
from pydantic import ValidationError

from atelier.dispatch.backends import parse_backend
from atelier.dispatch.runner import node_error, scrub
from atelier.errors import GraphInvalid, JobNotFound
from atelier.settings import Settings


def test_problem_bodies_have_a_stable_type() -> None:
    problem = JobNotFound("no job 'x'").problem()
    assert problem == {
        "type": "https://atelier.dev/problems/job-not-found",
        "title": "Job not found",
        "status": 404,
        "detail": "no job 'x'",
        "retryable": False,
    }
    graph = GraphInvalid([{"node_id": "3", "input": "steps", "reason": "too big"}])
    assert graph.detail == "node 3 input 'steps': too big"


def test_scrub_removes_server_paths() -> None:
    assert (
        scrub("Invalid image file: /home/user/ComfyUI/input/cat.png")
        == "Invalid image file: cat.png"
    )
    assert (
        scrub(r"cannot open C:\ComfyUI\models\x.safetensors now") == "cannot open x.safetensors now"
    )
    assert scrub("value 3/4 is odd") == "value 3/4 is odd"
    error = node_error(
        {
            "exception_message": "CUDA out of memory",
            "exception_type": "RuntimeError",
            "node_id": "3",
        }
    )
    assert error["type"] == "out_of_memory" and error["retryable"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_BACKENDS", "http://a:8188, gpu=http://b:8188/")
    monkeypatch.setenv("ATELIER_DATA_DIR", "/tmp/x")
    settings = Settings()
    assert settings.backends == ["http://a:8188", "gpu=http://b:8188"]
    assert settings.resolved_database_url == "sqlite+aiosqlite:////tmp/x/atelier.db"
    assert (
        Settings(database_url="postgresql://u@h/db").resolved_database_url
        == "postgresql+asyncpg://u@h/db"
    )
    assert Settings(data_dir=Path("d")).artifacts_dir == Path("d/artifacts")
    with pytest.raises(ValidationError):
        Settings(backends=["ftp://nope"])


def test_backend_names() -> None:
    assert parse_backend("http://10.0.0.5:8188") == ("10.0.0.5:8188", "http://10.0.0.5:8188")
    assert parse_backend("gpu1=http://h:1/") == ("gpu1", "http://h:1")
