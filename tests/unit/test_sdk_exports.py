"""The SDK's public surface is pinned: a name added or removed is a deliberate change
(like httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import atelier.client
from atelier.client import errors

PUBLIC = {
    "ApiError",
    "Artifact",
    "ArtifactNotFound",
    "AsyncAtelier",
    "Atelier",
    "AtelierClient",
    "AtelierError",
    "Attempt",
    "BackendFit",
    "BadRequest",
    "CapabilityMissing",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "Forbidden",
    "GraphInvalid",
    "Job",
    "JobError",
    "JobNotFound",
    "JobPage",
    "JobStateConflict",
    "KeyCreated",
    "KeyView",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "WorkflowDetail",
    "WorkflowNotFound",
    "WorkflowSummary",
    # the studio
    "Bible",
    "Character",
    "GalleryItem",
    "GalleryPage",
    "Pipeline",
    "Project",
    "ProjectDefaults",
    "ProjectPage",
    "Reference",
    "Run",
    "RunPage",
    "RunWaitTimeout",
    "SegmentStatus",
    "Step",
    "VisualStyle",
}


def test_exported_members_are_pinned() -> None:
    assert set(atelier.client.__all__) == PUBLIC
    exported = {name for name in dir(atelier.client) if not name.startswith("_")}
    modules = {"async_client", "base", "errors", "models", "sync", "sync_client"}
    modules |= {"studio_async", "studio_base", "studio_models", "studio_sync"}
    assert exported - modules == PUBLIC


def test_every_exception_is_exported_and_derives_from_the_root() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert classes <= PUBLIC
    for name in classes:
        assert issubclass(getattr(atelier.client, name), atelier.client.AtelierError)


def test_the_sdk_does_not_import_the_server() -> None:
    heavy = ("fastapi", "sqlalchemy", "uvicorn", "starlette", "alembic", "atelier.api")
    code = "import sys, atelier.client; print([m for m in sys.modules if m.startswith({!r})])"
    out = subprocess.run(
        [sys.executable, "-c", code.format(heavy)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_py_typed_ships() -> None:
    assert resources.files("atelier").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["atelier"]
