"""Which queued job goes to which free backend slot: a pure function, tested on its own.

The order of preference, as the architecture sets it:

1. capability: the backend has every node class and model file the graph uses, and at
   least the VRAM the job declares;
2. priority: higher first;
3. fair share: within a priority, owners take turns, the owner with the fewest jobs in
   flight first (so one owner's thousand jobs do not block another's one); an owner at
   its concurrency cap waits;
4. placement: an idle backend before a busy one (a job waiting, pipelined, behind
   another cannot start before it ends); then model affinity: a backend whose last job
   used the same checkpoint (ComfyUI keeps it loaded); a slot whose checkpoint another
   queued job wants is left for that job, but a job that has waited
   ``affinity_max_wait`` takes any slot, so affinity never starves anyone;
5. age: older first.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    job_id: str
    node_classes: frozenset[str]
    priority: int = 0
    owner: str | None = None
    checkpoint: str | None = None
    vram: int | None = None  # bytes the job says it needs
    waited: float = 0.0  # seconds in the queue
    models: frozenset[str] = frozenset()  # model files the graph names, "folder/file"


@dataclass(frozen=True)
class Slot:
    backend: str
    free: int
    node_classes: frozenset[str] | None  # None: not known yet, assume it can run anything
    checkpoint: str | None = None  # the checkpoint of the last job sent there
    vram_total: int | None = None
    idle: bool = True  # nothing running or waiting there
    models: frozenset[str] | None = None  # model files it has; None: not known yet

    def can_run(self, candidate: Candidate) -> bool:
        if self.node_classes is not None and not candidate.node_classes <= self.node_classes:
            return False
        if self.models is not None and not candidate.models <= self.models:
            return False
        if candidate.vram is not None:
            return self.vram_total is not None and self.vram_total >= candidate.vram
        return True


@dataclass(frozen=True)
class Policy:
    fair_share: bool = True
    affinity: bool = True
    affinity_max_wait: float = 30.0
    owner_cap: int = 0  # jobs in flight per owner; 0 = no cap
    round_robin: bool = False  # plain rotation over backends, for comparison only
    last_backend: str | None = None  # where round robin left off
    owner_caps: dict[str | None, int] = field(default_factory=dict)  # per-owner overrides
    in_flight: dict[str | None, int] = field(default_factory=dict)  # per owner, now


def fair_order(candidates: Sequence[Candidate], policy: Policy) -> list[Candidate]:
    """Priority first; within a priority, owners in turn (fewest in flight first)."""
    by_priority: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_priority[candidate.priority].append(candidate)
    ordered: list[Candidate] = []
    load = dict(policy.in_flight)
    for priority in sorted(by_priority, reverse=True):
        group = by_priority[priority]
        if not policy.fair_share:
            ordered.extend(group)
            continue
        queues: dict[str | None, deque[Candidate]] = defaultdict(deque)
        for candidate in group:  # already oldest first
            queues[candidate.owner].append(candidate)
        arrival = {owner: index for index, owner in enumerate(queues)}
        while queues:
            owner = min(queues, key=lambda o: (load.get(o, 0), arrival[o]))
            ordered.append(queues[owner].popleft())
            load[owner] = load.get(owner, 0) + 1
            if not queues[owner]:
                del queues[owner]
    return ordered


def assign(
    candidates: Sequence[Candidate], slots: Sequence[Slot], policy: Policy | None = None
) -> list[tuple[str, str]]:
    """Pairs of (job_id, backend name), in dispatch order."""
    policy = policy or Policy()
    free = {slot.backend: slot.free for slot in slots}
    loaded = {slot.backend: slot.checkpoint for slot in slots}
    in_flight = dict(policy.in_flight)
    pending = fair_order(candidates, policy)
    pairs: list[tuple[str, str]] = []
    for candidate in pending:
        if not any(free.values()):
            break
        cap = policy.owner_caps.get(candidate.owner, policy.owner_cap)
        if cap and in_flight.get(candidate.owner, 0) >= cap:
            continue
        able = [s for s in slots if free[s.backend] > 0 and s.can_run(candidate)]
        if not able:
            continue
        chosen: Slot | None
        if policy.round_robin:
            chosen = _next_in_rotation(able, slots, pairs[-1][1] if pairs else policy.last_backend)
        else:
            chosen = _choose(candidate, able, pending, pairs, free, loaded, policy)
        if chosen is None:
            continue
        free[chosen.backend] -= 1
        if candidate.checkpoint is not None:
            loaded[chosen.backend] = candidate.checkpoint
        in_flight[candidate.owner] = in_flight.get(candidate.owner, 0) + 1
        pairs.append((candidate.job_id, chosen.backend))
    return pairs


def _choose(
    candidate: Candidate,
    able: list[Slot],
    pending: list[Candidate],
    pairs: list[tuple[str, str]],
    free: dict[str, int],
    loaded: dict[str, str | None],
    policy: Policy,
) -> Slot | None:
    assigned = {job_id for job_id, _ in pairs}
    busy = {backend for _, backend in pairs}

    def idle(slot: Slot) -> bool:
        return slot.idle and slot.backend not in busy

    def rank(slot: Slot) -> tuple[bool, bool, int, int]:
        warm = policy.affinity and loaded[slot.backend] == candidate.checkpoint
        return (idle(slot), warm, free[slot.backend], -able.index(slot))

    if not policy.affinity or candidate.checkpoint is None:
        return max(able, key=rank)
    wanted = {
        other.checkpoint
        for other in pending
        if other is not candidate
        and other.job_id not in assigned
        and other.priority == candidate.priority
        and other.checkpoint is not None
        and other.checkpoint != candidate.checkpoint
    }
    open_slots = [s for s in able if loaded[s.backend] not in wanted or loaded[s.backend] is None]
    if open_slots:
        return max(open_slots, key=rank)
    if candidate.waited >= policy.affinity_max_wait:
        return max(able, key=rank)
    return None  # every free slot is warm for another queued job; wait for a better one


def _next_in_rotation(able: list[Slot], slots: Sequence[Slot], last: str | None) -> Slot:
    names = sorted(slot.backend for slot in slots)
    start = names.index(last) + 1 if last in names else 0
    rotation = names[start:] + names[:start]
    return min(able, key=lambda slot: rotation.index(slot.backend))
