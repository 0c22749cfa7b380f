"""Schemathesis fuzzes every operation of the OpenAPI document against a real server.

The server runs on its own thread (schemathesis calls it synchronously over a real
socket) with a fake ComfyUI behind it, in ``open`` auth mode so that no generated request
(an admin key made along the way, say) locks the rest out. No answer may be a 5xx, and
every answer must match the schema the document gives for it (problem+json included).
Streams that never end by design (SSE) are left out. ``ATELIER_FUZZ_EXAMPLES`` sets the
examples per operation (default 25: about a minute on two cores).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from atelier.app import create_app
from atelier.settings import Settings
from atelier.testing import ThreadedFakeComfyUI
from tests.conftest import FAST, free_port

EXAMPLES = int(os.environ.get("ATELIER_FUZZ_EXAMPLES", "25"))
STREAMS = ["job_events", "all_events", "run_events"]


@pytest.fixture(scope="module")
def atelier_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    with ThreadedFakeComfyUI(root_dir=root / "comfy", name="a") as fake:
        settings = Settings(
            data_dir=root / "atelier",
            database_url=f"sqlite+aiosqlite:///{root / 'atelier.db'}",
            backends=[f"a={fake.url}"],
            port=free_port(),
            auth_mode="open",
            max_wait_seconds=0.2,
            max_body_bytes=256 * 1024,
            **FAST,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host="127.0.0.1",
                port=settings.port,
                log_level="error",
                loop="asyncio",  # as every other test; uvloop's transports warn at teardown
            )
        )
        thread = threading.Thread(target=server.run, name="atelier-fuzz", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{settings.port}"
        finally:
            server.should_exit = True
            thread.join(30)


@pytest.fixture(scope="module")
def api_schema(atelier_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{atelier_url}/openapi.json")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_server_errors_and_answers_match_the_schema(api_schema: Any, atelier_url: str) -> None:
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") in STREAMS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, atelier_url)
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing invalid to generate (no parameters, or free strings)
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: GenerationMode, base_url: str) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        database=None,
        report_multiple_bugs=False,
    )
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=15)
        if mode is GenerationMode.NEGATIVE:
            # Invalid requests: they must be refused cleanly, never with a 5xx.
            case.validate_response(response, checks=[not_a_server_error, content_type_conformance])
        else:
            case.validate_response(response, checks=CHECKS)

    run()
