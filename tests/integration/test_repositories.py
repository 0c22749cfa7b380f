"""The repository contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from atelier.db.database import Database
from atelier.db.tables import ArtifactRow, JobRow, utcnow
from atelier.dispatch.ledger import JobLedger
from atelier.events import LocalEventBus
from atelier.job_state import JobStatus


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[JobLedger]:
    database = Database(database_url)
    await database.migrate()
    await database.migrate()  # idempotent
    try:
        yield JobLedger(database, LocalEventBus())
    finally:
        await database.close()


def _job(**values: object) -> JobRow:
    now = utcnow()
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "status": "queued",
        "priority": 0,
        "graph": {"1": {}},
        "user_metadata": {},
        "labels": {},
        "attempt": 0,
        "cancel_requested": False,
        "progress": 0.0,
        "created_at": now,
        "queued_at": now,
        "updated_at": now,
    }
    fields.update(values)
    return JobRow(**fields)


async def _add(ledger: JobLedger, job: JobRow) -> None:
    async with ledger.unit() as unit:
        await unit.jobs.add(job)


async def test_terminal_states_never_change(ledger: JobLedger) -> None:
    job = _job()
    await _add(ledger, job)
    attempt = await ledger.claim(job.id, "a", 1)
    assert attempt is not None
    assert await ledger.claim(job.id, "b", 1) is None  # already running
    assert await ledger.complete(job.id, attempt, [], owner=None)
    assert not await ledger.fail(job.id, attempt, {"type": "late", "message": "late"})
    assert not await ledger.cancelled(job.id, attempt)
    status = await ledger.requeue(job.id, attempt, "lost", max_attempts=3)
    assert status == "completed"
    async with ledger.unit() as unit:
        row = await unit.jobs.get(job.id)
        assert row is not None and row.status == "completed" and row.progress == 1.0


async def test_a_stale_attempt_cannot_touch_the_job(ledger: JobLedger) -> None:
    job = _job()
    await _add(ledger, job)
    first = await ledger.claim(job.id, "a", 1)
    assert first is not None
    assert await ledger.requeue(job.id, first, "backend died", max_attempts=3) == "queued"
    second = await ledger.claim(job.id, "b", 2)
    assert second is not None
    assert not await ledger.complete(job.id, first, [], owner=None)
    assert await ledger.complete(job.id, second, [], owner=None)
    async with ledger.unit() as unit:
        attempts = await unit.jobs.attempts(job.id)
    assert [(a.number, a.backend, a.status) for a in attempts] == [
        (1, "a", "lost"),
        (2, "b", "completed"),
    ]


async def test_requeue_gives_up_after_max_attempts(ledger: JobLedger) -> None:
    job = _job()
    await _add(ledger, job)
    for number in (1, 2):
        attempt = await ledger.claim(job.id, "a", number)
        assert attempt is not None
        expected = "queued" if number == 1 else "failed"
        assert await ledger.requeue(job.id, attempt, "gone", max_attempts=2) == expected


async def test_concurrent_claims_give_the_job_to_one(ledger: JobLedger) -> None:
    job = _job()
    await _add(ledger, job)
    results = await asyncio.gather(*(ledger.claim(job.id, f"b{i}", 1) for i in range(5)))
    assert sum(r is not None for r in results) == 1


async def test_dispatch_order_and_queue_position(ledger: JobLedger) -> None:
    now = utcnow()
    low = _job(priority=0, created_at=now - timedelta(seconds=10))
    high_old = _job(priority=5, created_at=now - timedelta(seconds=5))
    high_new = _job(priority=5, created_at=now)
    cancelled = _job(priority=9, status="cancelled")
    for job in (low, high_old, high_new, cancelled):
        await _add(ledger, job)
    async with ledger.unit() as unit:
        order = [j.id for j in await unit.jobs.dispatchable(per_owner=10)]
        positions = [await unit.jobs.queue_position(j) for j in (high_old, high_new, low)]
        counts = await unit.jobs.count_by_status()
    assert order == [high_old.id, high_new.id, low.id]
    assert positions == [0, 1, 2]
    assert counts["queued"] == 3 and counts["cancelled"] == 1


async def test_events_are_ordered_and_replayable(ledger: JobLedger) -> None:
    job = _job()
    await _add(ledger, job)
    async with ledger.bus.subscribe(job.id) as subscription:
        async with ledger.unit() as unit:
            for i in range(3):
                await unit.emit(job.id, "progress", {"i": i})
        live = [subscription.queue.get_nowait() for _ in range(3)]
    async with ledger.unit() as unit:
        stored = await unit.events.after(live[0].id, job_id=job.id)
    assert [e.data["i"] for e in live] == [0, 1, 2]
    assert [e.id for e in stored] == [live[1].id, live[2].id]


async def test_label_filter_and_cursor(ledger: JobLedger) -> None:
    now = utcnow()
    jobs = [
        _job(labels={"scene": str(i % 2)}, created_at=now + timedelta(seconds=i)) for i in range(4)
    ]
    for job in jobs:
        await _add(ledger, job)
    async with ledger.unit() as unit:
        found = await unit.jobs.find(labels={"scene": "1"})
        page = await unit.jobs.find(limit=2)
        rest = await unit.jobs.find(before=(page[-1].created_at, page[-1].id))
    assert [j.id for j in found] == [jobs[3].id, jobs[1].id]
    assert [j.id for j in page + rest] == [j.id for j in reversed(jobs)]


async def test_shared_blobs_survive_deleting_one_job(ledger: JobLedger) -> None:
    first, second = _job(status="completed"), _job(status="completed")
    for job in (first, second):
        await _add(ledger, job)
    async with ledger.unit() as unit:
        for job, key in ((first, "k" * 64), (second, "k" * 64), (first, "u" * 64)):
            await unit.artifacts.add(
                ArtifactRow(
                    id=str(uuid.uuid4()),
                    job_id=job.id,
                    filename="x.png",
                    kind="image",
                    content_type="image/png",
                    size=1,
                    sha256=key,
                    storage_key=key,
                    created_at=utcnow(),
                )
            )
    async with ledger.unit() as unit:
        unused = await unit.artifacts.delete_for_job(first.id)
        await unit.jobs.delete(first.id)
    assert unused == ["u" * 64]
    async with ledger.unit() as unit:
        assert await unit.jobs.get(first.id) is None
        assert len((await unit.artifacts.for_jobs([second.id]))[second.id]) == 1


async def test_job_status_vocabulary() -> None:
    assert {s.value for s in JobStatus} == {"queued", "running", "completed", "failed", "cancelled"}
    assert JobStatus("failed").terminal and not JobStatus("running").terminal
