"""The OpenAPI document says what the API really answers: problem+json for errors.

FastAPI documents request-validation errors as its own ``HTTPValidationError`` JSON;
Atelier answers them (and every other error) as RFC 9457 problems. This rewrites the
document once: every operation's 422 and a ``4XX``/``5XX`` range answer refer to one
``Problem`` schema, and the bearer-key security scheme is declared.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (docs/ERRORS.md)",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "retryable": {"type": "boolean"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def install(app: FastAPI) -> None:
    """Wrap ``app.openapi`` (whatever it is by now, so install this last)."""
    previous = app.openapi

    def openapi() -> dict[str, Any]:
        schema = previous()
        add_problems(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_problems(schema: dict[str, Any]) -> None:
    """Idempotent: safe on a document that was already rewritten."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key"}
    }
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses:
                responses["422"] = {"description": "Validation failed", "content": PROBLEM_CONTENT}
            responses.setdefault("4XX", {"description": "Problem", "content": PROBLEM_CONTENT})
            responses.setdefault("5XX", {"description": "Problem", "content": PROBLEM_CONTENT})
            if path.startswith("/api/v1/"):
                operation["security"] = [{"bearer": []}, {}]
