"""The backend pool: every configured ComfyUI, its health, capabilities and load.

Health checks run with exponential backoff for backends that fail. A backend is
``up`` (answers, capabilities known), ``degraded`` (answers, but /object_info could not
be read or it answered slowly), or ``down`` (unreachable). Runners report a backend they
lost, which marks it down at once and schedules an early re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from atelier.comfyui.client import ComfyClient, ComfyClientFactory
from atelier.errors import BackendError

log = logging.getLogger("atelier.backends")

OBJECT_INFO_MAX_AGE = 600.0


class BackendState(enum.StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


def parse_backend(spec: str) -> tuple[str, str]:
    """``name=http://host:port`` or a bare URL (named after host:port)."""
    name, sep, url = spec.partition("=")
    if not sep or "://" in name:
        url = spec
        parts = urlsplit(spec)
        name = parts.netloc or spec
    return name, url.rstrip("/")


@dataclass(eq=False)
class Backend:
    name: str
    url: str
    client: ComfyClient
    slots: int = 1
    state: BackendState = BackendState.UNKNOWN
    last_error: str | None = None
    failures: int = 0
    next_check: float = 0.0
    system_stats: dict[str, Any] = field(default_factory=dict)
    object_info: dict[str, Any] | None = None
    object_info_at: float = 0.0
    running: set[str] = field(default_factory=set)
    last_checkpoint: str | None = None
    busy_since: float | None = None
    model_loads: int = 0  # jobs sent here with another checkpoint than the last one
    # Measured seconds per node class (samplers: per step), for progress weights and ETAs.
    node_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def accepts_work(self) -> bool:
        return self.state in (BackendState.UP, BackendState.DEGRADED)

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - len(self.running)) if self.accepts_work else 0

    @property
    def node_classes(self) -> frozenset[str] | None:
        return frozenset(self.object_info) if self.object_info is not None else None

    @property
    def device(self) -> dict[str, Any]:
        devices = self.system_stats.get("devices") or [{}]
        first = devices[0] if isinstance(devices, list) and devices else {}
        return first if isinstance(first, dict) else {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "status": self.state.value,
            "vram_total": self.device.get("vram_total"),
            "vram_free": self.device.get("vram_free"),
            "slots": self.slots,
            "queue_length": len(self.running),
            "current_jobs": sorted(self.running),
            "last_error": self.last_error,
            "node_classes": len(self.object_info) if self.object_info is not None else None,
            "model_loads": self.model_loads,
        }


class BackendPool:
    def __init__(
        self,
        specs: list[str],
        *,
        slots: int = 1,
        interval: float = 5.0,
        timeout: float = 5.0,
        client_factory: ComfyClientFactory = ComfyClient,
    ) -> None:
        self.backends: dict[str, Backend] = {}
        for spec in specs:
            name, url = parse_backend(spec)
            self.backends[name] = Backend(
                name=name, url=url, client=client_factory(url, timeout=timeout), slots=slots
            )
        self.interval = interval
        self.timeout = timeout
        self._watchers: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.backends.values())

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` when a backend comes up, goes down or frees a slot (the
        dispatcher that schedules onto this pool watches it)."""
        self._watchers.append(on_change)

    def get(self, name: str | None) -> Backend | None:
        return self.backends.get(name) if name else None

    @property
    def up_count(self) -> int:
        return sum(1 for b in self.backends.values() if b.accepts_work)

    def known_object_infos(self) -> list[dict[str, Any]]:
        return [b.object_info for b in self.backends.values() if b.object_info is not None]

    async def start(self) -> None:
        """Check every backend once, then keep checking in the background."""
        await asyncio.gather(*(self.check(b) for b in self.backends.values()))
        self._task = asyncio.create_task(self._loop(), name="backend-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for backend in self.backends.values():
            await backend.client.close()

    def report_lost(self, backend: Backend, reason: str) -> None:
        """A runner lost this backend: take it out of rotation and re-check soon."""
        self._mark_failed(backend, reason, hard=True)
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            due = [b for b in self.backends.values() if b.next_check <= now]
            if due:
                await asyncio.gather(*(self.check(b) for b in due))
            soonest = min((b.next_check for b in self.backends.values()), default=now + 60)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.05, soonest - time.monotonic()))

    async def check(self, backend: Backend) -> None:
        was_accepting = backend.accepts_work
        started = time.monotonic()
        try:
            backend.system_stats = await backend.client.system_stats(timeout=self.timeout)
            state = BackendState.UP
            if (
                backend.object_info is None
                or started - backend.object_info_at > OBJECT_INFO_MAX_AGE
            ):
                try:
                    backend.object_info = await backend.client.object_info()
                    backend.object_info_at = time.monotonic()
                except BackendError as exc:
                    backend.last_error = f"object_info: {exc.detail}"
                    state = BackendState.DEGRADED
            if time.monotonic() - started > self.timeout / 2:
                state = BackendState.DEGRADED
            if state is BackendState.UP:
                backend.last_error = None
            if backend.state is not state:
                log.info("backend %s is %s", backend.name, state.value)
            backend.state = state
            backend.failures = 0
            backend.next_check = time.monotonic() + self.interval
        except BackendError as exc:
            self._mark_failed(backend, exc.detail, hard=False)
        if backend.accepts_work != was_accepting:
            for watcher in self._watchers:
                watcher()

    def _mark_failed(self, backend: Backend, reason: str, *, hard: bool) -> None:
        backend.failures += 1
        backend.last_error = reason
        if backend.state is not BackendState.DOWN:
            log.warning("backend %s is down: %s", backend.name, reason)
        backend.state = BackendState.DOWN
        # Back off 1x, 2x, 4x ... the interval, at most a minute; a runner's report
        # asks for a quick re-check instead, since the backend may just have restarted.
        backoff = min(60.0, self.interval * 2 ** min(backend.failures - 1, 6))
        backend.next_check = time.monotonic() + (min(1.0, backoff) if hard else backoff)
