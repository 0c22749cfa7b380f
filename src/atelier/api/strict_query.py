"""Unknown query parameters are a 400 on every /api/v1 route, not silently ignored.

A typo (``?stauts=failed``) that is ignored returns the wrong list and looks right. An
application-wide dependency, so that routes added later are covered too: it compares
the request's query keys with what the matched route declares (its own parameters and
its dependencies'), plus the few that authentication reads itself.
"""

from __future__ import annotations

from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.requests import HTTPConnection

from atelier.errors import UnknownQueryParameter

API = "/api/v1"
# Read by authentication, on any route: signed artifact links and browser WebSockets.
ALWAYS = frozenset({"sig", "expires", "access_token"})
_ALLOWED: dict[int, tuple[Any, frozenset[str]]] = {}


def declared_query(dependant: Dependant) -> frozenset[str]:
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(field.alias for field in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(names)


async def reject_unknown_query(connection: HTTPConnection) -> None:
    if not connection.query_params or not connection.url.path.startswith(API):
        return
    route = connection.scope.get("route")
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return
    cached = _ALLOWED.get(id(route))
    if cached is None or cached[0] is not route:
        if len(_ALLOWED) > 10_000:  # routes are rebuilt when workflows change
            _ALLOWED.clear()
        cached = (route, declared_query(dependant) | ALWAYS)
        _ALLOWED[id(route)] = cached
    allowed = cached[1]
    unknown = sorted(set(connection.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed - ALWAYS)) or "none"
        raise UnknownQueryParameter(
            f"unknown query parameter {unknown[0]!r} (this route takes: {takes})",
            errors=[
                {"field": name, "reason": f"unknown query parameter (known: {takes})"}
                for name in unknown
            ],
        )
