"""Rate limits across replicas: with ``redis_url`` every replica counts against one
window in the real Redis (127.0.0.1:6379); without Redis reachable, requests are served
(quotas still hold, in the database)."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from tests.conftest import free_port
from tests.team import auth, make_key

REDIS_URL = os.environ.get("ATELIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.postgres


@pytest.fixture
def redis_url() -> str:
    host, port = REDIS_URL.split("://", 1)[1].split("/", 1)[0].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required on CI but unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL} ({exc}); set ATELIER_TEST_REDIS_URL")
    return REDIS_URL


async def test_one_rate_window_for_every_replica(
    server_factory: Any, postgres_url: str, redis_url: str
) -> None:
    first = await server_factory(postgres_url, [], redis_url=redis_url)
    second = await server_factory(postgres_url, [], redis_url=redis_url)
    async with first.client() as a, second.client() as b:
        admin = await make_key(a, "root", "admin")
        slow = await make_key(a, "slow", "read", admin_key=admin, rate_limit=4)
        for client in (a, b, a, b):
            assert (await client.get("/api/v1/jobs", headers=auth(slow))).status_code == 200
        for client in (a, b):
            refused = await client.get("/api/v1/jobs", headers=auth(slow))
            assert refused.status_code == 429, refused.text
            assert refused.json()["limit"] == "requests_per_minute"


async def test_without_redis_requests_are_served(server_factory: Any, postgres_url: str) -> None:
    server = await server_factory(
        postgres_url,
        [],
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
    )
    async with server.client() as client:
        admin = await make_key(client, "root", "admin")
        slow = await make_key(client, "slow", "read", admin_key=admin, rate_limit=1)
        for _ in range(3):
            assert (await client.get("/api/v1/jobs", headers=auth(slow))).status_code == 200
