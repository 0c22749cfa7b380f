"""The job state machine has one home (atelier/job_state.py) and one door (the ledger)."""

from __future__ import annotations

import re
from pathlib import Path

import atelier
from atelier.job_state import TERMINAL, TRANSITIONS, AttemptStatus, JobStatus

SOURCE = Path(atelier.__file__).parent


def test_the_drawn_machine_is_the_one_defined() -> None:
    edges = {(t.name, tuple(sorted(t.sources)), t.target) for t in TRANSITIONS}
    q, r, c, f, x = (
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    )
    assert edges == {
        ("claim", (q,), r),
        ("start", (r,), r),
        ("progress", (r,), r),
        ("move", (r,), r),
        ("request_cancel", (r,), r),
        ("complete", (r,), c),
        ("fail", (r,), f),
        ("fail_unrun", tuple(sorted((q, r))), f),
        ("cancel_running", (r,), x),
        ("cancel_queued", (q,), x),
        ("requeue", (r,), q),
        ("retry", tuple(sorted((x, f))), q),
    }
    assert len({t.name for t in TRANSITIONS}) == len(TRANSITIONS)


def test_only_retry_leaves_a_terminal_status_and_never_from_completed() -> None:
    leaving = [t for t in TRANSITIONS if t.sources & TERMINAL]
    assert [t.name for t in leaving] == ["retry"]
    assert JobStatus.COMPLETED not in leaving[0].sources
    assert all(not s.terminal for t in TRANSITIONS if t.name != "retry" for s in t.sources)


def test_statuses_keep_their_stored_spelling() -> None:
    assert [s.value for s in JobStatus] == ["queued", "running", "completed", "failed", "cancelled"]
    assert {s.value for s in AttemptStatus} == {
        "running",
        "completed",
        "failed",
        "cancelled",
        "lost",
        "moved",
    }


def test_only_the_ledger_applies_transitions() -> None:
    callers = sorted(
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if re.search(r"\.jobs\.transition\(", path.read_text())
    )
    assert callers == ["dispatch/ledger.py"]
