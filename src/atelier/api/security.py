"""Authentication, scopes, rate limits and quotas for every /api/v1 request, in one place.

``authenticate`` is an application-wide dependency: it runs once per request (FastAPI
caches it, so routes that take ``Caller`` get the same object), for every router,
including ones added later, and for GET /metrics (scope ``metrics`` or ``admin``).
/health, /ready, / and the docs are not under /api/v1 and stay open. ``AuditTrail``
records what keyed admins change, after the answer is known.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Any

from fastapi import WebSocketException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atelier.auth.caller import (
    ANONYMOUS,
    METRICS_PATH,
    PUBLIC,
    READ,
    Caller,
    artifact_id,
    enqueues,
    public_read,
    required_scope,
)
from atelier.errors import AtelierError, InsufficientScope, Unauthorized

log = logging.getLogger("atelier.auth")

API = "/api/v1"


def is_loopback(connection: HTTPConnection) -> bool:
    return _loopback_host(connection.client.host if connection.client else "")


@functools.lru_cache(maxsize=1024)
def _loopback_host(host: str) -> bool:
    # Cached: parsing the client's address costs more than the rest of a cached read.
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        return token.strip()
    if connection.scope["type"] == "websocket":  # browsers cannot set headers there
        return connection.query_params.get("access_token")
    return None


async def authenticate(connection: HTTPConnection) -> Caller:
    """Who is calling; raises 401, 403 or 429 problems (WebSocket: close codes 44xx)."""
    cached: Caller | None = getattr(connection.state, "caller", None)
    if cached is not None:
        return cached
    try:
        caller = await _authenticate(connection)
    except AtelierError as exc:
        if connection.scope["type"] == "websocket":
            raise WebSocketException(code=4000 + exc.status, reason=exc.detail[:120]) from exc
        raise
    connection.state.caller = caller
    return caller


async def _authenticate(connection: HTTPConnection) -> Caller:
    path: str = connection.scope["path"]  # what the router matches; no URL object needed
    if not path.startswith(API) and path != METRICS_PATH:
        return ANONYMOUS
    runtime: Any = connection.app.state.runtime
    security = runtime.security
    method = connection.scope.get("method", "GET")
    artifact = artifact_id(path)
    signature = connection.query_params.get("sig")
    if artifact and signature is not None and method in ("GET", "HEAD"):
        security.signer.verify(artifact, connection.query_params.get("expires", ""), signature)
        return Caller(owner=None, scopes=frozenset({READ}), signed_artifact=artifact)
    token = bearer(connection)
    if token is not None:
        keyed = await security.keys.authenticate(token)
        if keyed is None:
            raise Unauthorized("the API key is not valid or has been revoked")
        caller: Caller = keyed
    elif await anonymous_allowed(connection, runtime):
        caller = ANONYMOUS
    elif public_read(method, path):
        caller = PUBLIC  # the gallery: published items only
    else:
        raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
    await security.throttle.hit(caller)
    required = required_scope(method, path)
    if not caller.allows(required):
        raise InsufficientScope(required)
    if enqueues(method, path):
        await security.throttle.check_enqueue(caller)
    return caller


async def anonymous_allowed(connection: HTTPConnection, runtime: Any) -> bool:
    mode = runtime.settings.auth_mode
    if mode == "open":
        return True
    if mode == "required":
        return False
    return is_loopback(connection) and not await runtime.security.keys.keys_exist()


class AuditTrail:
    """Records every change a keyed admin makes under /api/v1 (key changes are recorded
    by the key service itself, with more detail)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or method in ("GET", "HEAD", "OPTIONS")
            or not path.startswith(API)
            or path.startswith(f"{API}/admin/keys")
        ):
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            # Written before the answer leaves: an admin never sees a change unrecorded.
            if message["type"] == "http.response.start":
                await _audit(scope, method, path, int(message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


async def _audit(scope: Scope, method: str, path: str, status: int) -> None:
    caller = scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller) or caller.key_id is None or not caller.admin:
        return
    route = getattr(scope.get("route"), "path", None) or path
    try:
        await scope["app"].state.runtime.security.audit.record(
            f"{method} {route}"[:64],
            actor=caller.owner,
            target=path[:255],
            details={"status": status, "key_id": caller.key_id},
        )
    except Exception:
        log.exception("could not write the audit log")
