"""The jobs read model on its own: what it serves, and what makes it read again."""

from __future__ import annotations

import asyncio

import pytest

from atelier.errors import JobNotFound
from atelier.jobs.readmodel import JobReadModel, StatusDocument


class Tables:
    """Stands in for the database behind ``load``: counts reads, can hold one open."""

    def __init__(self) -> None:
        self.version = 0
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.read = asyncio.Event()
        self.queued = False
        self.batches: list[list[str]] = []

    async def load(self, job_ids: list[str]) -> dict[str, StatusDocument]:
        """One transaction reading these jobs; a job named "gone" does not exist."""
        self.reads += 1
        self.batches.append(list(job_ids))
        seen = self.version
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        document = StatusDocument(f'{{"v": {seen}}}'.encode(), "alice", self.queued)
        return {job_id: document for job_id in job_ids if job_id != "gone"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_held_document_is_served_until_its_job_changes() -> None:
    tables, model = Tables(), JobReadModel(size=8, ttl=60)
    first = await model.read("j", "http://a", tables.load)
    assert await model.read("j", "http://a", tables.load) == first
    assert tables.reads == 1 and model.hits == 1
    tables.version = 1
    model.forget(["other"], False)
    assert (await model.read("j", "http://a", tables.load)).body == b'{"v": 0}'
    model.forget(["j"], False)
    assert (await model.read("j", "http://a", tables.load)).body == b'{"v": 1}'
    assert tables.reads == 2


async def test_a_load_that_raced_a_change_is_not_kept() -> None:
    tables, model = Tables(), JobReadModel(size=8, ttl=60)
    tables.gate = asyncio.Event()
    reader = asyncio.create_task(model.read("j", "http://a", tables.load))
    await tables.read.wait()  # the load has read version 0 and now waits
    tables.version = 1
    model.forget(["j"], False)  # the change commits while the load is under way
    tables.gate.set()
    assert (await reader).body == b'{"v": 0}'  # asked before the change: fine to answer
    # ...but not kept: the next reader sees the change.
    assert (await model.read("j", "http://a", tables.load)).body == b'{"v": 1}'


async def test_readers_who_miss_together_share_one_load() -> None:
    tables, model = Tables(), JobReadModel(size=8, ttl=60)
    tables.gate = asyncio.Event()
    readers = [asyncio.create_task(model.read("j", "http://a", tables.load)) for _ in range(5)]
    await asyncio.sleep(0)
    tables.gate.set()
    assert len({(await r).body for r in readers}) == 1
    assert tables.reads == 1


async def test_queued_jobs_are_read_again_when_the_queue_changes() -> None:
    tables, model = Tables(), JobReadModel(size=8, ttl=60)
    tables.queued = True
    await model.read("j", "http://a", tables.load)
    await model.read("j", "http://a", tables.load)
    assert tables.reads == 1
    model.forget(["another"], True)  # another job entered or left the queue
    await model.read("j", "http://a", tables.load)
    assert tables.reads == 2


async def test_entries_expire_and_the_oldest_go_first() -> None:
    clock, tables = Clock(), Tables()
    model = JobReadModel(size=2, ttl=2.0, spread=0, clock=clock)
    for job_id in ("a", "b", "c"):
        await model.read(job_id, "http://a", tables.load)
    assert len(model) == 2  # "a" went
    await model.read("b", "http://a", tables.load)
    assert tables.reads == 3
    clock.now += 1.7  # in its last quarter: served, and read again in the background
    assert (await model.read("b", "http://a", tables.load)).body == b'{"v": 0}'
    for _ in range(4):  # the batch's load, the job's share of it, then its landing
        await asyncio.sleep(0)
    assert tables.reads == 4 and not model._loading
    clock.now += 2.5
    await model.read("b", "http://a", tables.load)
    assert tables.reads == 5
    await model.read("b", "http://other", tables.load)  # another base URL: other links
    assert tables.reads == 6


async def test_documents_read_together_expire_at_different_times() -> None:
    """A dashboard's first poll loads many jobs at once; were they all read again at
    once, every request behind that burst of loads would wait for it."""
    clock, tables = Clock(), Tables()
    model = JobReadModel(size=100, ttl=2.0, clock=clock)
    for n in range(50):
        await model.read(f"j{n}", "http://a", tables.load)
    lifetimes = sorted(entry.expires - clock.now for entry in model._entries.values())
    assert lifetimes[0] >= 1.5 and lifetimes[-1] <= 2.0
    assert lifetimes[-1] - lifetimes[0] > 0.2  # 50 draws over 0.5 s: spread, not one instant
    clock.now += 1.75  # about half have expired (a miss each), the rest are served
    for n in range(50):
        await model.read(f"j{n}", "http://a", tables.load)
    assert 50 + 5 < model.misses < 50 + 45


async def test_jobs_missed_in_one_turn_are_read_in_one_load() -> None:
    """A dashboard's first poll of twenty jobs, or a change of the queue that makes
    every held queued document stale, costs one transaction, not twenty."""
    tables, model = Tables(), JobReadModel(size=100, ttl=60)
    names = [f"j{n}" for n in range(20)] + ["gone"]
    readers = [asyncio.create_task(model.read(name, "http://a", tables.load)) for name in names]
    readers += [asyncio.create_task(model.read("j0", "http://a", tables.load))]  # shares j0's
    answers = await asyncio.gather(*readers, return_exceptions=True)
    assert tables.batches == [names]
    assert isinstance(answers[20], JobNotFound)  # only the reader of the missing job fails
    assert all(isinstance(a, StatusDocument) for a in answers[:20] + answers[21:])
    await model.read("j5", "http://a", tables.load)
    assert tables.reads == 1 and len(model) == 20
    await model.read("j5", "http://b", tables.load)  # other links: a batch of its own
    assert tables.batches[-1] == ["j5"]


async def test_errors_are_not_kept_and_a_zero_size_holds_nothing() -> None:
    model = JobReadModel(size=8, ttl=60)

    async def missing(job_ids: list[str]) -> dict[str, StatusDocument]:
        return {}

    with pytest.raises(JobNotFound):
        await model.read("j", "http://a", missing)
    assert len(model) == 0
    tables, off = Tables(), JobReadModel(size=0, ttl=60)
    await off.read("j", "http://a", tables.load)
    await off.read("j", "http://a", tables.load)
    assert tables.reads == 2 and not off.enabled
