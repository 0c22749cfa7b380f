"""Live events across processes on the real PostgreSQL: LISTEN/NOTIFY wakes every
replica, the table is the truth, and ids that commit out of order are never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from atelier.db.database import Database
from atelier.db.notify import PostgresEventBus, asyncpg_dsn
from atelier.db.repositories import EventRepository
from atelier.events import JobEvent
from tests.graphs import sampler_graph
from tests.helpers import eventually, read_sse, submit

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    await database.migrate()
    yield database
    await database.close()


async def next_events(queue: asyncio.Queue[JobEvent], count: int) -> list[int]:
    return [(await asyncio.wait_for(queue.get(), 10)).id for _ in range(count)]


async def test_a_late_commit_is_delivered_before_the_ids_after_it(database: Database) -> None:
    bus = PostgresEventBus(database, grace=30.0, poll_interval=0.2)
    await bus.start()
    try:
        await asyncio.wait_for(bus.listening.wait(), 10)
        async with bus.subscribe() as subscription:
            # Two writers: the first takes its id, the second takes the next one and
            # commits first.
            async with database.sessions() as slow, slow.begin():
                first = await EventRepository(slow).add("job-1", "progress", {"n": 1})
                async with database.transaction() as fast:
                    second = await EventRepository(fast).add("job-2", "progress", {"n": 2})
                assert second.id == first.id + 1
                await asyncio.sleep(0.5)  # the NOTIFY of the second one has arrived
                assert subscription.queue.empty(), "delivered past an uncommitted id"
                assert bus.horizon() == first.id - 1
            assert await next_events(subscription.queue, 2) == [first.id, second.id]
            assert bus.horizon() == second.id
    finally:
        await bus.close()


async def test_a_rolled_back_id_is_passed_when_its_writer_ends(database: Database) -> None:
    bus = PostgresEventBus(database, grace=60.0, poll_interval=0.2)
    await bus.start()
    try:
        async with bus.subscribe() as subscription:
            async with database.sessions() as doomed:
                await doomed.begin()
                lost = await EventRepository(doomed).add("job-1", "progress", {})
                async with database.transaction() as session:
                    kept = await EventRepository(session).add("job-1", "completed", {})
                await asyncio.sleep(0.5)
                assert subscription.queue.empty()  # its writer is still open
                await doomed.rollback()
            # No clock: the writer ended and the id is still missing, so it never will be.
            assert await next_events(subscription.queue, 1) == [kept.id]
            assert kept.id == lost.id + 1
    finally:
        await bus.close()


async def test_a_hung_writer_holds_events_for_the_grace_only(database: Database) -> None:
    bus = PostgresEventBus(database, grace=1.0, poll_interval=0.2)
    await bus.start()
    try:
        async with bus.subscribe() as subscription, database.sessions() as hung, hung.begin():
            await EventRepository(hung).add("job-1", "progress", {})
            async with database.transaction() as session:
                kept = await EventRepository(session).add("job-2", "completed", {})
            assert await next_events(subscription.queue, 1) == [kept.id]
    finally:
        await bus.close()


async def test_the_listener_reconnects_and_resyncs(database: Database) -> None:
    bus = PostgresEventBus(database, grace=5.0, poll_interval=30.0)  # no help from polling
    await bus.start()
    try:
        await asyncio.wait_for(bus.listening.wait(), 10)
        # Cut the LISTEN connection from the server side, as a restart would.
        connection = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            killed = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await connection.close()
        assert killed == 1
        async with bus.subscribe() as subscription:
            async with database.transaction() as session:  # while nobody listens
                missed = await EventRepository(session).add("job-1", "queued", {})
            assert await next_events(subscription.queue, 1) == [missed.id]
            await asyncio.wait_for(bus.listening.wait(), 10)
    finally:
        await bus.close()


async def test_sse_on_another_replica_and_resume_there(
    server_factory: Any, postgres_url: str, fake: Any
) -> None:
    """Replica A runs the job; a client follows it on replica B, drops, and resumes on
    B with Last-Event-ID: the two halves are the whole sequence, in order, once each."""
    fake.set_timing(step_time=0.02)
    runner = await server_factory(postgres_url, [f"a={fake.url}"])
    watcher = await server_factory(postgres_url, [])
    async with runner.client() as a, watcher.client() as b:
        job = await submit(a, sampler_graph(steps=20))
        head = await read_sse(b, f"/api/v1/jobs/{job['id']}/events", limit=3)
        rest = await read_sse(
            b,
            f"/api/v1/jobs/{job['id']}/events",
            headers={"Last-Event-ID": str(head[-1]["id"])},
        )
        everything = await read_sse(a, f"/api/v1/jobs/{job['id']}/events")
    ids = [event["id"] for event in head + rest]
    assert ids == [event["id"] for event in everything]
    assert ids == sorted(set(ids))
    assert rest[-1]["type"] == "completed"

    async def both_buses_caught_up() -> bool:
        return watcher.runtime.bus.horizon() == runner.runtime.bus.horizon() == ids[-1]

    await eventually(both_buses_caught_up)


async def test_a_bus_started_over_an_open_transaction_waits_for_it(database: Database) -> None:
    """A replica that starts (or restarts) while a writer holds a lower id must not
    put its horizon past that id."""
    async with database.transaction() as session:
        before = await EventRepository(session).add("job-0", "queued", {})
    bus = PostgresEventBus(database, grace=30.0, poll_interval=0.2)
    try:
        async with database.sessions() as slow, slow.begin():
            pending = await EventRepository(slow).add("job-1", "progress", {})
            async with database.transaction() as fast:
                later = await EventRepository(fast).add("job-2", "progress", {})
            await bus.start()
            assert bus.horizon() == before.id
            async with bus.subscribe() as subscription:
                await asyncio.sleep(0.3)
                assert subscription.queue.empty()
                await slow.commit()
                assert await next_events(subscription.queue, 2) == [pending.id, later.id]
    finally:
        await bus.close()
