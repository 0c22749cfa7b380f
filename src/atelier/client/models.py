"""The SDK's typed answers: the very Pydantic models the API answers with.

They live beside the API code in modules that import nothing of the server (jobs/views,
workflows/views, auth/views), so a client and the server cannot drift apart. ``Event``
is the one model only clients need: a job event as it arrives over Server-Sent Events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from atelier.auth.views import KeyCreated, KeyView
from atelier.jobs.views import ArtifactView as Artifact
from atelier.jobs.views import AttemptView as Attempt
from atelier.jobs.views import JobError, JobPage
from atelier.jobs.views import JobView as Job
from atelier.workflows.views import BackendFit, WorkflowDetail, WorkflowSummary

TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Event(BaseModel):
    """One job event: queued, running, progress, output, completed, failed, cancelled,
    cancel_requested or requeued; ``data`` is what the event says (progress carries
    ``progress``, ``node``, ``step`` and ``max``; status events the job's ``status``)."""

    id: int
    job_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime

    @property
    def terminal(self) -> bool:
        """Whether the job ended with this event."""
        return self.type in TERMINAL


__all__ = [
    "TERMINAL",
    "Artifact",
    "Attempt",
    "BackendFit",
    "Event",
    "Job",
    "JobError",
    "JobPage",
    "KeyCreated",
    "KeyView",
    "WorkflowDetail",
    "WorkflowSummary",
]
