"""Logging: plain text for a terminal, or one JSON object per line for a log pipeline.

Every line written while a job is being run carries the job's id, attempt and backend:
the runner sets them in a context variable, which each asyncio task inherits, so the
ComfyUI client, the ledger and anything else called on the job's behalf are covered
without passing ids around. ``job_context`` sets them elsewhere (the scheduler).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
JOB_FIELDS = ("job_id", "attempt", "backend")

_job: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "atelier_job", default=None
)


@contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Within this block (and tasks started in it), log lines name this job."""
    token = _job.set({**(_job.get() or {}), **fields})
    try:
        yield
    finally:
        _job.reset(token)


class JobFields(logging.Filter):
    """Copies the current job's fields onto each record (unless the call set them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_job.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in JOB_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{key}={getattr(record, key)}" for key in JOB_FIELDS if hasattr(record, key)]
        return f"{text} [{' '.join(fields)}]" if fields else text


def configure(level: str = "info", log_format: LogFormat = "text") -> None:
    """Send every logger (uvicorn's too) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(JobFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request at info: health checks and /history polls would drown
    # the lines that matter. --log-level debug shows them.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)
