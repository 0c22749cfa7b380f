"""What the sync and async studio calls share: paths, request bodies, run ends."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from atelier.client.errors import AtelierError
from atelier.client.models import Artifact, Event
from atelier.production.run_views import RunView

RUN_ENDS = frozenset({"completed", "failed", "cancelled"})
# wait_run() also returns on a run held for a person: nothing moves until one decides.
RUN_STOPS = RUN_ENDS | {"awaiting_review"}


def project_path(project_id: str) -> str:
    return f"/api/v1/projects/{quote(project_id, safe='')}"


def character_path(project_id: str, character: str) -> str:
    return f"{project_path(project_id)}/characters/{quote(character, safe='')}"


def run_path(run_id: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}"


def pipeline_runs_path(pipeline: str) -> str:
    return f"/api/v1/pipelines/{quote(pipeline, safe='')}/runs"


def given(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields that were given (None means "leave as it is"); models
    become their JSON form. The server validates and names what is wrong."""
    return {
        name: value.model_dump(mode="json", exclude_unset=True)
        if isinstance(value, BaseModel)
        else value
        for name, value in fields.items()
        if value is not None
    }


def reference_body(
    image: str | os.PathLike[str] | bytes | None, artifact: str | None, url: str | None
) -> dict[str, Any]:
    """Exactly one of a local file or bytes (sent as base64), an artifact id, a URL."""
    if sum(x is not None for x in (image, artifact, url)) != 1:
        raise ValueError("give exactly one of image, artifact or url")
    if artifact is not None:
        return {"artifact": artifact}
    if url is not None:
        return {"url": url}
    assert image is not None
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return {"base64": base64.b64encode(data).decode()}


def list_params(**values: Any) -> list[tuple[str, str | int]]:
    params: list[tuple[str, str | int]] = []
    for name, value in values.items():
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        params += [(name, item) for item in items]
    return params


def run_stopped(event: Event) -> bool:
    """Whether the run ended, or stopped for a review, with this event."""
    return event.type == "run.status" and event.data.get("status") in RUN_STOPS


def run_ended(event: Event) -> bool:
    return event.type == "run.status" and event.data.get("status") in RUN_ENDS


EventTest = Callable[[Event], bool]


def gallery_path(artifact_id: str) -> str:
    return f"/api/v1/gallery/{quote(artifact_id, safe='')}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_names(artifacts: list[Artifact]) -> list[str]:
    """A safe, distinct file name for each artifact."""
    names: list[str] = []
    for artifact in artifacts:
        name = _UNSAFE.sub("_", Path(artifact.filename).name).strip("._") or artifact.id
        stem, dot, suffix = name.rpartition(".")
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{stem}_{n}.{suffix}" if dot else f"{name}_{n}"
        names.append(candidate)
    return names


class RunWaitTimeout(AtelierError):
    """The run did not end (or stop for a review) in time; ``run`` is the run as last
    seen."""

    def __init__(self, run: RunView, timeout: float) -> None:
        self.run = run
        self.timeout = timeout
        super().__init__(f"run {run.id} is still {run.status} after {timeout:g} s")
