"""One place that turns every error into RFC 9457 application/problem+json."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from atelier.db import database
from atelier.errors import (
    PROBLEM_BASE,
    AtelierError,
    DatabaseUnavailable,
    MalformedJson,
    ValidationFailed,
)

log = logging.getLogger("atelier.api")

PROBLEM_JSON = "application/problem+json"


def problem_response(error: AtelierError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error.problem(), status_code=error.status, media_type=PROBLEM_JSON, headers=headers
    )


async def send_problem(send: Send, error: AtelierError) -> None:
    """Answer with a problem document straight from ASGI middleware (before any route)."""
    payload = json.dumps(error.problem(), separators=(",", ":")).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(AtelierError)
    async def _atelier(request: Request, exc: AtelierError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.detail)
        return problem_response(exc, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(MalformedJson("the request body is not valid JSON"))
        problems = [
            {"field": _field(tuple(e.get("loc", ()))), "reason": e.get("msg", "invalid")}
            for e in errors
        ]
        first = problems[0] if problems else {"field": "", "reason": "invalid"}
        detail = f"{first['field']}: {first['reason']}" if first["field"] else first["reason"]
        return problem_response(ValidationFailed(detail, errors=problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "request-too-large"}.get(
            exc.status_code, "http-error"
        )
        body = {
            "type": PROBLEM_BASE + slug,
            "title": str(exc.detail) if exc.status_code != 404 else "Not found",
            "status": exc.status_code,
            "detail": str(exc.detail),
            "retryable": False,
        }
        return JSONResponse(
            body,
            status_code=exc.status_code,
            media_type=PROBLEM_JSON,
            headers=getattr(exc, "headers", None),
        )

    # A database that restarts or drops connections is a 503 to retry, not a 500. The
    # transaction rolled back, so nothing changed (a cut COMMIT is ambiguous: clients
    # retry with an Idempotency-Key).
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not database.unreachable(exc):
            return _internal(request, exc)
        log.warning("%s %s: database unreachable: %s", request.method, request.url.path, exc)
        return problem_response(DatabaseUnavailable(), headers={"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)


def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(AtelierError("an internal error occurred; it has been logged"))
