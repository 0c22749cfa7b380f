"""The Dispatcher seam: what the jobs service and the runtime ask of whatever runs jobs.

``LocalDispatcher`` (single node: an in-process scheduler pushing to ComfyUI URLs) and
``ClusterDispatcher`` (cluster: workers pull through PostgreSQL) both satisfy it.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol


class Capacity(NamedTuple):
    """Where jobs can run, as last seen: ComfyUI backends (single node) or live workers
    (cluster), how many are known and how many take work now."""

    kind: str  # "backend" or "worker"
    known: int
    up: int


class Dispatcher(Protocol):
    """Built with everything it needs (per-owner running caps included) in one pass."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop taking work; running jobs stay ``running`` and are re-attached later."""
        ...

    def wake(self) -> None:
        """A job was queued or a backend freed up: look at the queue now."""
        ...

    def request_cancel(self, job_id: str) -> None:
        """The durable cancel flag is set; stop the job where it runs, if it runs here."""
        ...

    def capacity(self) -> Capacity | None:
        """Where jobs can run, as last seen (no I/O); None before the first look."""
        ...

    async def describe_backends(self) -> list[dict[str, Any]]:
        """Where jobs run, as ``GET /api/v1/backends`` shows it: each with ``name``,
        ``url``, ``status`` (up, degraded, down), VRAM, ``slots``, ``queue_length``,
        ``current_jobs`` and ``last_error``."""
        ...

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until no job is queued or running (tests and benchmarks use this)."""
        ...
