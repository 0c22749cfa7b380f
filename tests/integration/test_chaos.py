"""The chaos suite, small: `python -m bench chaos` with 120 jobs over 3 backends and each
fault once (a backend SIGKILLed and restarted, Atelier SIGKILLed and restarted on the
same data, dropped WebSockets, a slow /view, 500s, a hang, and on PostgreSQL a restart of
the database), on SQLite and on PostgreSQL. Every job is counted at the end.

The servers and backends are real processes (`atelier serve`, `atelier fake-comfyui`);
PostgreSQL is a private cluster the run may restart. No timing is asserted.
"""

from __future__ import annotations

import os

import pytest
from bench.chaos import FAULTS, ChaosConfig, print_result, run_chaos

from atelier.testing.postgres import postgres_bin


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_chaos_loses_nothing(database: str) -> None:
    if database == "postgres" and postgres_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required on CI")
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    config = ChaosConfig(
        jobs=120,
        backends=3,
        database=database,
        rounds=1,
        fault_interval=2.0,
        submit_seconds=20.0,
        step_time=0.02,
        global_watchers=2,
        job_watchers=12,
        timeout=240.0,
    )
    result = run_chaos(config)
    print_result(result)  # shown by pytest when the test fails
    counts = result.counts

    assert counts.defects() == []
    assert counts.accepted == 120 and not counts.rejected
    assert counts.completed == 120, counts.failed
    assert counts.outputs_checked >= 120
    assert counts.streams == 2 + 12
    injected = {fault.kind for fault in result.faults}
    assert injected == set(FAULTS) | ({"restart_postgres"} if database == "postgres" else set())
