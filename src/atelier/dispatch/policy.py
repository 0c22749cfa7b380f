"""Which queued job goes to which free backend: a pure function, tested on its own.

Jobs arrive ordered by priority (higher first), then age. Each job goes to a backend that
can run it (every node class its graph uses) and has a free slot; among those, the one
with the most free slots, so that work spreads over idle GPUs first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    job_id: str
    node_classes: frozenset[str]


@dataclass(frozen=True)
class Slot:
    backend: str
    free: int
    node_classes: frozenset[str] | None  # None: not known yet, assume it can run anything

    def can_run(self, candidate: Candidate) -> bool:
        return self.node_classes is None or candidate.node_classes <= self.node_classes


def assign(candidates: Sequence[Candidate], slots: Sequence[Slot]) -> list[tuple[str, str]]:
    """Pairs of (job_id, backend name), in dispatch order."""
    free = {slot.backend: slot.free for slot in slots}
    pairs: list[tuple[str, str]] = []
    for candidate in candidates:
        able = [s for s in slots if free[s.backend] > 0 and s.can_run(candidate)]
        if not able:
            continue
        best = max(able, key=lambda s: (free[s.backend], -slots.index(s)))
        free[best.backend] -= 1
        pairs.append((candidate.job_id, best.backend))
        if not any(free.values()):
            break
    return pairs
