"""The studio engine's lock per run: exclusive per key, and gone once nobody needs it."""

from __future__ import annotations

import asyncio

from atelier.production.locks import KeyedLocks


async def test_one_holder_per_key_and_nothing_kept_after() -> None:
    locks, order = KeyedLocks(), []

    async def work(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(work("run-1", "a"), work("run-1", "b"), work("run-2", "c"))
    a, b = order.index("a in"), order.index("b in")
    first, second = ("a", "b") if a < b else ("b", "a")
    assert order.index(f"{first} out") < order.index(f"{second} in")  # never both inside
    assert order.index("c in") < order.index(f"{first} out")  # another key does not wait
    assert len(locks) == 0  # a run that ended keeps no lock


async def test_a_holder_that_fails_releases_and_forgets() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("run-1"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert len(locks) == 0
    async with locks.hold("run-1"):  # free again
        assert len(locks) == 1
