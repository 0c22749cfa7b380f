"""One scheduling round's inputs, shared by both shapes: the queued jobs as the policy's
candidates and the settings as its rules. ``LocalDispatcher`` (single node) and
``ClusterScheduler`` (cluster) build their rounds here, so both run the same policy code
and the scheduling figures of one shape carry over to the other."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from atelier.comfyui import capabilities
from atelier.db.repositories import JobRepository, QueuedJob
from atelier.dispatch import policy
from atelier.settings import Settings

CLAIM_WINDOW = 32  # queued jobs per owner the scheduler looks at per round


class QueueWindow:
    """The queued jobs a round weighs, with what each needs of a backend. A round reads
    up to ``CLAIM_WINDOW`` jobs per owner every time a slot frees; a job's graph never
    changes once submitted, so its node classes and model files are read and worked out
    once, when it enters the window, not in every round it waits through."""

    def __init__(self) -> None:
        self._needs: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        # The graphs the last read fetched (the jobs new to the window), which a round
        # that claims one of them at once need not read again.
        self.fresh_graphs: dict[str, dict[str, Any]] = {}

    async def read(self, jobs: JobRepository) -> list[QueuedJob]:
        window = await jobs.dispatchable(per_owner=CLAIM_WINDOW)
        missing = [job.id for job in window if job.id not in self._needs]
        self.fresh_graphs = await jobs.graphs(missing) if missing else {}
        for job_id, graph in self.fresh_graphs.items():
            self._needs[job_id] = (
                capabilities.graph_classes(graph),
                capabilities.graph_models(graph),
            )
        # Only the window is kept: a job claimed, cancelled or deleted leaves it.
        window = [job for job in window if job.id in self._needs]
        self._needs = {job.id: self._needs[job.id] for job in window}
        return window

    def candidates(self, window: Iterable[QueuedJob], now: datetime) -> list[policy.Candidate]:
        return [
            policy.Candidate(
                job.id,
                self._needs[job.id][0],
                priority=job.priority,
                owner=job.owner,
                checkpoint=job.checkpoint,
                vram=job.vram_required,
                waited=(now - job.created_at).total_seconds(),
                models=self._needs[job.id][1],
            )
            for job in window
        ]


def rules(
    settings: Settings,
    *,
    last_backend: str | None,
    owner_caps: dict[str | None, int],
    in_flight: dict[str | None, int],
) -> policy.Policy:
    return policy.Policy(
        fair_share=settings.fair_share,
        affinity=settings.affinity,
        affinity_max_wait=settings.affinity_max_wait,
        owner_cap=settings.max_running_per_owner,
        round_robin=settings.scheduler == "round_robin",
        last_backend=last_backend,
        owner_caps=dict(owner_caps),
        in_flight=in_flight,
    )
