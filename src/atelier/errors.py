"""Every error Atelier raises on purpose, in one tree.

    AtelierError                      500 internal
    ├── InvalidRequest                400 invalid-request (field, reason)
    │   ├── MalformedJson             400 malformed-json
    │   ├── ValidationFailed          422 validation-failed (errors: [{field, reason}])
    │   └── GraphInvalid              422 graph-invalid (errors: [{node_id, input, reason}])
    ├── RequestTooLarge               413 request-too-large
    ├── NotFound                      404 not-found
    │   ├── JobNotFound               404 job-not-found
    │   └── ArtifactNotFound          404 artifact-not-found
    ├── Conflict                      409 conflict
    │   └── JobStateConflict          409 job-state-conflict
    ├── ServiceUnavailable            503 service-unavailable
    └── BackendError                  (ComfyUI side; not rendered to clients directly)
        ├── BackendUnavailable        connection refused, reset or timed out
        ├── PromptRejected            ComfyUI answered 400 to POST /prompt
        └── BackendProtocolError      ComfyUI answered something we cannot read

The API renders each as RFC 9457 ``application/problem+json`` with the stable ``type``
``https://atelier.dev/problems/<slug>``. Each class says whether retrying can help.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://atelier.dev/problems/"


class AtelierError(Exception):
    """Something went wrong inside Atelier."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip().splitlines()[0]
        self.extra = extra
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "retryable": self.retryable,
        }
        body.update(self.extra)
        return body


class InvalidRequest(AtelierError):
    """The request is not valid."""

    status = 400
    slug = "invalid-request"
    title = "Invalid request"

    def __init__(self, detail: str | None = None, *, field: str | None = None, **extra: Any):
        if field is not None:
            extra.setdefault("errors", [{"field": field, "reason": detail}])
        super().__init__(detail, **extra)


class MalformedJson(InvalidRequest):
    """The request body is not valid JSON."""

    slug = "malformed-json"
    title = "Malformed JSON"


class ValidationFailed(InvalidRequest):
    """One or more fields of the request are invalid."""

    status = 422
    slug = "validation-failed"
    title = "Validation failed"


class GraphInvalid(InvalidRequest):
    """The graph would be rejected by ComfyUI."""

    status = 422
    slug = "graph-invalid"
    title = "Graph invalid"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        first = errors[0] if errors else {}
        detail = detail or (
            f"node {first.get('node_id')!s}"
            + (f" input {first['input']!r}" if first.get("input") else "")
            + f": {first.get('reason', 'invalid')}"
        )
        super().__init__(detail, errors=errors)
        self.errors = errors


class RequestTooLarge(AtelierError):
    """The request is larger than this server accepts."""

    status = 413
    slug = "request-too-large"
    title = "Request too large"


class NotFound(AtelierError):
    """No such resource."""

    status = 404
    slug = "not-found"
    title = "Not found"


class JobNotFound(NotFound):
    """No job with this id."""

    slug = "job-not-found"
    title = "Job not found"


class ArtifactNotFound(NotFound):
    """No artifact with this id."""

    slug = "artifact-not-found"
    title = "Artifact not found"


class Conflict(AtelierError):
    """The request conflicts with the current state."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class JobStateConflict(Conflict):
    """The job is not in a state that allows this."""

    slug = "job-state-conflict"
    title = "Job state conflict"


class ServiceUnavailable(AtelierError):
    """The service cannot take this request right now."""

    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"
    retryable = True


class BackendError(AtelierError):
    """A ComfyUI backend failed."""

    status = 502
    slug = "backend-error"
    title = "Backend error"


class BackendUnavailable(BackendError):
    """The ComfyUI backend could not be reached."""

    slug = "backend-unavailable"
    title = "Backend unavailable"
    retryable = True


class PromptRejected(BackendError):
    """ComfyUI rejected the prompt."""

    slug = "prompt-rejected"
    title = "Prompt rejected"

    def __init__(self, detail: str, *, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        super().__init__(detail)
        self.error = error
        self.node_errors = node_errors


class BackendProtocolError(BackendError):
    """The ComfyUI backend answered something Atelier cannot read."""

    slug = "backend-protocol-error"
    title = "Backend protocol error"
