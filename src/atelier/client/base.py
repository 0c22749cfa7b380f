"""What the sync and async clients share: request bodies, paths, answers, file names."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent

from atelier.client.errors import ConnectionFailed, error_for
from atelier.client.models import TERMINAL, Artifact, Event, Job

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
RECONNECT_ATTEMPTS = 5  # consecutive failed reconnects before events() gives up
USER_AGENT = "atelier-sdk"

__all__ = ["TERMINAL"]  # re-exported for the clients


def base_url_of(base_url: str | None) -> str:
    return (base_url or os.environ.get("ATELIER_URL") or DEFAULT_URL).rstrip("/")


def headers_of(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("ATELIER_API_KEY")
    headers = {"User-Agent": USER_AGENT}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def job_body(
    graph: dict[str, Any] | None,
    workflow: str | None,
    params: dict[str, Any] | None,
    preset: str | None,
    priority: int,
    metadata: dict[str, Any] | None,
    labels: dict[str, str] | None,
    vram_gb: float | None,
    webhook: dict[str, Any] | None,
) -> dict[str, Any]:
    """The body of POST /api/v1/jobs (the server validates it and names what is wrong)."""
    if (graph is None) == (workflow is None):
        raise ValueError("give either a graph or a workflow name")
    body: dict[str, Any] = {"priority": priority}
    if graph is not None:
        body["graph"] = graph
    else:
        body.update(workflow=workflow, params=params or {})
        if preset is not None:
            body["preset"] = preset
    if metadata:
        body["metadata"] = metadata
    if labels:
        body["labels"] = labels
    if vram_gb is not None:
        body["requirements"] = {"vram_gb": vram_gb}
    if webhook is not None:
        body["webhook"] = webhook
    return body


def submit_headers(wait: float | None, idempotency_key: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if wait:
        headers["Prefer"] = f"wait={wait:g}"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def job_path(job_id: str) -> str:
    return f"/api/v1/jobs/{quote(job_id, safe='')}"


def workflow_path(name: str) -> str:
    return f"/api/v1/workflows/{quote(name, safe='')}"


def artifact_url(base_url: str, artifact: Artifact | str) -> tuple[str, bool]:
    """Where to fetch an artifact (a model, an id or a URL) and whether to send the key:
    only to this server, never to another host a URL may point at."""
    if isinstance(artifact, Artifact):
        return f"{base_url}/api/v1/artifacts/{quote(artifact.id, safe='')}", True
    if "://" in artifact:
        same = httpx.URL(artifact).join("/") == httpx.URL(base_url).join("/")
        return artifact, same
    if artifact.startswith("/"):
        return base_url + artifact, True
    return f"{base_url}/api/v1/artifacts/{quote(artifact, safe='')}", True


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or its problem raised as a typed error (the body must be read)."""
    if response.status_code >= 400:
        raise error_for(response)
    return response


def connection_failed(base_url: str, exc: httpx.TransportError) -> ConnectionFailed:
    return ConnectionFailed(f"cannot reach Atelier at {base_url}: {exc or type(exc).__name__}")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_names(job: Job) -> list[str]:
    """A safe, distinct file name for each of the job's outputs."""
    names: list[str] = []
    for artifact in job.outputs:
        name = _UNSAFE.sub("_", Path(artifact.filename).name).strip("._") or artifact.id
        stem, dot, suffix = name.rpartition(".")
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{stem}_{n}.{suffix}" if dot else f"{name}_{n}"
        names.append(candidate)
    return names


def upload_part(file: str | os.PathLike[str] | bytes, filename: str | None) -> tuple[str, bytes]:
    if isinstance(file, bytes):
        return filename or "upload", file
    path = Path(file)
    return filename or path.name, path.read_bytes()


def list_params(
    status: str | list[str] | None, labels: dict[str, str] | None, limit: int, cursor: str | None
) -> list[tuple[str, str | int]]:
    params: list[tuple[str, str | int]] = [("limit", limit)]
    statuses = [status] if isinstance(status, str) else status or []
    params += [("status", s) for s in statuses]
    params += [("label", f"{k}:{v}") for k, v in (labels or {}).items()]
    if cursor:
        params.append(("cursor", cursor))
    return params


def key_body(
    name: str,
    scopes: list[str],
    rate_limit: int | None,
    max_queued: int | None,
    max_running: int | None,
    max_artifact_bytes: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "scopes": scopes}
    limits = {
        "rate_limit": rate_limit,
        "max_queued": max_queued,
        "max_running": max_running,
        "max_artifact_bytes": max_artifact_bytes,
    }
    body.update({k: v for k, v in limits.items() if v is not None})
    return body


def key_path(key_id: str) -> str:
    return f"/api/v1/admin/keys/{quote(key_id, safe='')}"


# -- following a job's events, across broken connections ---------------------------

GATEWAY_ERRORS = frozenset({502, 503, 504})  # worth reconnecting the event stream after
SSE_READ_TIMEOUT = 45.0  # the server pings every 15 s; three missed pings is a dead link


class DeadlinePassed(Exception):
    """Internal: wait()'s timeout ran out while following events."""


class Reconnect:
    """The state of one events() follow: the last event id seen (sent back as
    Last-Event-ID, so a resumed stream misses and repeats nothing), consecutive failures
    (backoff, then ConnectionFailed), and wait()'s deadline."""

    def __init__(
        self, base_url: str, after: int, deadline: float | None, connect_timeout: float
    ) -> None:
        self.base_url = base_url
        self.last = after
        self.deadline = deadline
        self.connect_timeout = connect_timeout
        self.failures = 0

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed
        return remaining

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": str(self.last)} if self.last else {}

    def timeout(self) -> httpx.Timeout:
        remaining = self._remaining()
        read = SSE_READ_TIMEOUT if remaining is None else min(SSE_READ_TIMEOUT, remaining)
        return httpx.Timeout(self.connect_timeout, read=read)

    def seen(self, sse: ServerSentEvent) -> Event | None:
        """The event in a frame (None for frames without data); checks the deadline."""
        self._remaining()
        if not sse.data:
            return None
        event = Event.model_validate_json(sse.data)
        if event.id <= self.last:
            return None  # already delivered before the reconnect
        self.last = event.id
        self.failures = 0
        return event

    def failed(self, exc: Exception | None) -> None:
        """The stream broke or was refused (exc), or ended before the job did (None)."""
        self._remaining()
        self.failures += 1
        if self.failures <= RECONNECT_ATTEMPTS:
            return
        if isinstance(exc, httpx.TransportError):
            raise connection_failed(self.base_url, exc) from exc
        reason = str(exc) if exc is not None else "it keeps ending early"
        raise ConnectionFailed(f"cannot follow the event stream of {self.base_url}: {reason}")

    def backoff(self) -> float:
        delay: float = min(0.2 * 2.0 ** (self.failures - 1), 5.0)
        remaining = self._remaining()
        return delay if remaining is None else min(delay, remaining)


def target_path(path: Path, response: httpx.Response, artifact: Artifact | str) -> Path:
    """``path``, or inside it when it is a directory: the file name from the answer's
    Content-Disposition (made safe), else the artifact's id."""
    if not path.is_dir():
        return path
    fallback = artifact.id if isinstance(artifact, Artifact) else artifact.rsplit("/", 1)[-1]
    match = _DISPOSITION.search(response.headers.get("content-disposition", ""))
    name = match.group(1) if match else ""
    safe = _UNSAFE.sub("_", Path(name).name).strip("._")
    return path / (safe or _UNSAFE.sub("_", fallback.split("?", 1)[0]) or "artifact")


_DISPOSITION = re.compile(r'filename="?([^";]+)"?')
