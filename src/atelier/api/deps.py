"""Dependencies that make route signatures read as prose.

They are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in
its thread pool, a thread hop per dependency per request on the hottest routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from atelier.api.security import authenticate
from atelier.auth.caller import Caller
from atelier.auth.service import Security
from atelier.jobs.service import JobsService
from atelier.jobs.streams import EventStreams
from atelier.runtime import Runtime
from atelier.webhooks.service import WebhookService


def runtime_of(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


async def get_jobs(connection: HTTPConnection) -> JobsService:
    return runtime_of(connection).jobs


async def get_streams(connection: HTTPConnection) -> EventStreams:
    return runtime_of(connection).streams


async def get_security(connection: HTTPConnection) -> Security:
    return runtime_of(connection).security


async def get_webhooks(connection: HTTPConnection) -> WebhookService:
    return runtime_of(connection).webhooks


def base_url_of(request: Request) -> str:
    configured = runtime_of(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


async def get_base_url(request: Request) -> str:
    return base_url_of(request)


async def get_owner(caller: Annotated[Caller, Depends(authenticate)]) -> str | None:
    """Whose things the caller may see: None (everything) for admins and for anonymous
    callers where the server is open; else the key's owner."""
    return caller.visible_owner


async def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    """The hook every admin-only route depends on (workflow registration, ...). Today
    the admin scope of those routes is enforced by ``authenticate``'s route rules
    (auth/caller.py: writes under /api/v1/workflows need ``admin``), so this allows
    whatever ``authenticate`` allowed; a route-level check belongs here."""
    return caller


async def get_creator(caller: Annotated[Caller, Depends(authenticate)]) -> str | None:
    """The owner of what the caller creates (jobs, webhooks): the key's owner, even for
    admins; None for anonymous callers of an open server."""
    return caller.owner


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
JobsDep = Annotated[JobsService, Depends(get_jobs)]
StreamsDep = Annotated[EventStreams, Depends(get_streams)]
SecurityDep = Annotated[Security, Depends(get_security)]
WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
BaseUrl = Annotated[str, Depends(get_base_url)]
Owner = Annotated[str | None, Depends(get_owner)]
Creator = Annotated[str | None, Depends(get_creator)]
CallerDep = Annotated[Caller, Depends(authenticate)]
AdminDep = Annotated[Caller, Depends(require_admin)]
