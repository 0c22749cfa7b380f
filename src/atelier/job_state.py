"""A job's state machine: its statuses, its attempts' statuses, and every named move.

The ledger (``dispatch/ledger.py``) applies these transitions and nothing else changes a
job's status: each one is a conditional UPDATE that only matches a job in one of the
transition's sources, so a late event or a second process can never move a job out of a
terminal state.

    queued -> running -> completed | failed | cancelled
    queued <- running               (requeue: the backend was lost; attempt + 1 later)
    queued -> cancelled | failed    (cancel while queued; a job that cannot run at all)
    running -> running              (progress, a cancel request, a move to another backend)
    failed | cancelled -> queued    (retry)

An attempt is one run of a job on one backend. Its id, ``attempt_id``, is also the
``prompt_id`` and the ``client_id`` it has in ComfyUI, and the job's current one is kept
in the jobs table (the ``prompt_id`` column, named so since the first migration).

This module sits on the ground floor, beside ``events`` and ``errors``, so that the
tables, the ledger in ``dispatch/`` and the services in ``jobs/`` all read one definition.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class AttemptStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # its backend or worker went away; the job was requeued (or gave up)
    MOVED = "moved"  # taken out of one backend's queue to run on another


@dataclass(frozen=True)
class Transition:
    """One named move: allowed from any of ``sources``, it leaves the job in ``target``."""

    name: str
    sources: frozenset[JobStatus]
    target: JobStatus

    @property
    def changes_status(self) -> bool:
        """False for a move within one status (progress, a cancel request, a move)."""
        return self.sources != {self.target}


def _move(name: str, sources: set[JobStatus], target: JobStatus) -> Transition:
    return Transition(name, frozenset(sources), target)


Q, R = JobStatus.QUEUED, JobStatus.RUNNING
CLAIM = _move("claim", {Q}, R)
START = _move("start", {R}, R)  # ComfyUI began executing (it may have waited in its queue)
PROGRESS = _move("progress", {R}, R)
MOVE = _move("move", {R}, R)  # to another backend, as a new attempt
REQUEST_CANCEL = _move("request_cancel", {R}, R)  # the durable flag the runner acts on
COMPLETE = _move("complete", {R}, JobStatus.COMPLETED)
FAIL = _move("fail", {R}, JobStatus.FAILED)
FAIL_UNRUN = _move("fail_unrun", {Q, R}, JobStatus.FAILED)  # no attempt can run it
CANCEL_RUNNING = _move("cancel_running", {R}, JobStatus.CANCELLED)
CANCEL_QUEUED = _move("cancel_queued", {Q}, JobStatus.CANCELLED)
REQUEUE = _move("requeue", {R}, Q)
RETRY = _move("retry", {JobStatus.FAILED, JobStatus.CANCELLED}, Q)

TRANSITIONS = (
    CLAIM,
    START,
    PROGRESS,
    MOVE,
    REQUEST_CANCEL,
    COMPLETE,
    FAIL,
    FAIL_UNRUN,
    CANCEL_RUNNING,
    CANCEL_QUEUED,
    REQUEUE,
    RETRY,
)
