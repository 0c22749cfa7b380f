"""Dependencies that make route signatures read as prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from atelier.jobs.service import JobsService
from atelier.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_jobs(request: Request) -> JobsService:
    return get_runtime(request).jobs


def get_base_url(request: Request) -> str:
    configured = get_runtime(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


def get_owner(request: Request) -> str | None:
    """The caller's identity; None means "sees everything" (no keys configured)."""
    return None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
JobsDep = Annotated[JobsService, Depends(get_jobs)]
BaseUrl = Annotated[str, Depends(get_base_url)]
Owner = Annotated[str | None, Depends(get_owner)]
