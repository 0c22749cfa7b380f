"""The runtime is built in one pass, for both shapes: each part is made with the parts it
uses (constructor injection) and nothing is patched in afterwards.

Real parts: a real SQLite or PostgreSQL database, a fake ComfyUI on a real socket, the
runtime started and stopped as `atelier serve` does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from atelier.comfyui.client import ComfyClient
from atelier.db.notify import PostgresEventBus
from atelier.dispatch.cluster import ClusterDispatcher
from atelier.dispatch.local import LocalDispatcher
from atelier.events import LocalEventBus
from atelier.runtime import Runtime, start_runtime, stop_runtime
from atelier.webhooks.service import JobWebhooks
from tests.cluster import CLUSTER_FAST
from tests.conftest import make_settings


def _shared_parts(runtime: Runtime) -> None:
    """Every part holds the very objects the runtime holds: one of each, made once."""
    for part in dataclasses.fields(runtime):
        assert getattr(runtime, part.name) is not None, part.name
    assert runtime.ledger.database is runtime.database
    assert runtime.ledger.bus is runtime.bus
    assert runtime.jobs.ledger is runtime.ledger
    assert runtime.jobs.dispatcher is runtime.dispatcher
    assert runtime.jobs.pool is runtime.pool
    assert runtime.jobs.store is runtime.store
    # Signed links and per-job webhooks are given to the jobs service when it is made.
    assert runtime.jobs.sign_url == runtime.security.signer.url
    assert [type(e) for e in runtime.jobs.submit_extensions] == [JobWebhooks]
    assert runtime.webhooks.jobs is runtime.jobs
    assert runtime.webhooks.bus is runtime.bus
    assert runtime.streams.bus is runtime.bus and runtime.streams.ledger is runtime.ledger
    assert runtime.studio.gallery.pool is runtime.pool
    assert runtime.studio.runs.sign_url == runtime.security.signer.url
    assert runtime.studio.engine.jobs is runtime.jobs
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.jobs = runtime.jobs  # type: ignore[misc]


async def test_single_node_is_wired_in_one_pass(tmp_path: Path, fake: Any) -> None:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    runtime = await start_runtime(settings)
    try:
        _shared_parts(runtime)
        assert isinstance(runtime.bus, LocalEventBus)
        dispatcher = runtime.dispatcher
        assert isinstance(dispatcher, LocalDispatcher)
        assert dispatcher.ledger is runtime.ledger and dispatcher.pool is runtime.pool
        assert dispatcher.store is runtime.store
        # The keys' running caps: the dict the key service keeps fresh, not a copy.
        assert dispatcher.owner_caps is runtime.security.keys.running_caps
        backend = next(iter(runtime.pool))
        assert isinstance(backend.client, ComfyClient) and backend.client.base_url == fake.url
        assert backend.accepts_work  # checked at start, through the client it was made with
    finally:
        await stop_runtime(runtime)


async def test_a_cluster_replica_is_wired_in_one_pass(tmp_path: Path, postgres_url: str) -> None:
    settings = make_settings(tmp_path, postgres_url, [], shape="cluster", **CLUSTER_FAST)
    runtime = await start_runtime(settings)
    try:
        _shared_parts(runtime)
        assert isinstance(runtime.bus, PostgresEventBus)
        dispatcher = runtime.dispatcher
        assert isinstance(dispatcher, ClusterDispatcher)
        assert dispatcher.ledger is runtime.ledger
        assert dispatcher.scheduler.owner_caps is runtime.security.keys.running_caps
    finally:
        await stop_runtime(runtime)


async def test_the_cluster_shape_refuses_a_database_without_notify(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [], shape="cluster"
    )
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        await start_runtime(settings)
