"""One scheduling round's inputs, shared by both shapes: the queued jobs as the policy's
candidates and the settings as its rules. ``LocalDispatcher`` (single node) and
``ClusterScheduler`` (cluster) build their rounds here, so both run the same policy code
and the scheduling figures of one shape carry over to the other."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from atelier.comfyui import capabilities
from atelier.db.tables import JobRow
from atelier.dispatch import policy
from atelier.settings import Settings

CLAIM_WINDOW = 32  # queued jobs per owner the scheduler looks at per round


def candidates(jobs: Iterable[JobRow], now: datetime) -> list[policy.Candidate]:
    return [
        policy.Candidate(
            job.id,
            capabilities.graph_classes(job.graph),
            priority=job.priority,
            owner=job.owner,
            checkpoint=job.checkpoint,
            vram=job.vram_required,
            waited=(now - job.created_at).total_seconds(),
            models=capabilities.graph_models(job.graph),
        )
        for job in jobs
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
