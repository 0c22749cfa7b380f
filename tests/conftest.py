"""Shared fixtures: fake ComfyUI backends on real ports, real databases, a real server.

PostgreSQL tests run against ATELIER_TEST_POSTGRES_URL (default: the local server,
database ``test``), each in a fresh database. When no PostgreSQL answers they are skipped
with a clear reason, except on CI (CI=true), where that is an error.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from atelier.app import create_app
from atelier.runtime import Runtime
from atelier.settings import Settings
from atelier.testing import ThreadedFakeComfyUI

POSTGRES_URL = os.environ.get(
    "ATELIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

# Fast failure detection for tests; production defaults are in Settings.
FAST = {
    "health_interval": 0.5,
    "health_timeout": 1.0,
    "poll_interval": 0.5,
    "check_interval": 0.3,
    "backend_lost_timeout": 2.0,
    "progress_interval": 0.0,
}


_HANDED_OUT: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port for a server a test starts: free now, given to no other test, and below the
    kernel's ephemeral range. A port from that range (a bind to port 0) can be taken by
    any outgoing connection between this check and the server's own bind, which then
    fails with "address already in use" (seen once in CI)."""
    floor = _ephemeral_floor()
    for _ in range(1000):
        port = random.randrange(20000, floor) if floor > 21000 else 0
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-a", name="a") as backend:
        yield backend


@pytest.fixture
def fake_b(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy-b", name="b") as backend:
        yield backend


async def _postgres_available() -> str | None:
    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _run_aside(coroutine: Any) -> Any:
    """Run a coroutine on a loop of its own (fixtures may already be inside one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    problem = _run_aside(_postgres_available())
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(
                f"PostgreSQL is required on CI but unreachable at {POSTGRES_URL}: {problem}"
            )
        pytest.skip(
            f"PostgreSQL unreachable at {POSTGRES_URL} ({problem}); set ATELIER_TEST_POSTGRES_URL"
        )
    name = f"atelier_test_{uuid.uuid4().hex[:12]}"
    _run_aside(_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        _run_aside(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'atelier.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class Server:
    """A real Atelier on a real socket, in this test's event loop."""

    settings: Settings
    url: str
    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_server(settings: Settings) -> Server:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited during start")
        await asyncio.sleep(0.02)
    return Server(settings, f"http://127.0.0.1:{settings.port}", app, server, task)


def make_settings(
    tmp_path: Path, database_url: str, backends: list[str], **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "atelier",
        "database_url": database_url,
        "backends": backends,
        "port": free_port(),
        **FAST,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def server_factory(tmp_path: Path) -> AsyncIterator[Any]:
    """start(database_url, backends, **settings) -> Server; all stopped at the end."""
    started: list[Server] = []

    async def start(database_url: str, backends: list[str], **overrides: Any) -> Server:
        server = await start_server(make_settings(tmp_path, database_url, backends, **overrides))
        started.append(server)
        return server

    yield start
    for server in started:
        if not server.task.done():
            await server.stop()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the imports made lives all session: leave it out of every collection below
    (a full collection after each test then looks only at what tests made, 3x cheaper)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """A resource a test leaves open is collected (and reported) in that test's teardown,
    not in whichever test the garbage collector happens to run during."""
    yield
    gc.collect()
