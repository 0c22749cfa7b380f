"""The SDK's exceptions: every problem document the server answers, as a typed error.

    AtelierError                  anything the SDK raises on purpose
    ├── ConnectionFailed          the server could not be reached (or the stream broke)
    ├── WaitTimeout               wait() or run() gave up; .job is the job as last seen
    └── ApiError                  the server answered a problem (RFC 9457); .problem
        ├── BadRequest            400
        │   └── ValidationFailed  422; .errors names each field (or node and input)
        │       ├── GraphInvalid          graph-invalid
        │       └── CapabilityMissing     capability-missing
        ├── Unauthorized          401
        ├── Forbidden             403
        ├── NotFound              404
        │   ├── JobNotFound               job-not-found
        │   ├── ArtifactNotFound          artifact-not-found
        │   └── WorkflowNotFound          workflow-not-found
        ├── Conflict              409
        │   └── JobStateConflict          job-state-conflict
        ├── PayloadTooLarge       413
        ├── RateLimited           429; .retry_after in seconds (Retry-After)
        │   └── QuotaExceeded             quota-exceeded
        └── ServerError           5xx

The server's problem ``type`` picks the class (see docs/ERRORS.md); a type this SDK does
not know falls back to the class of its HTTP status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from atelier.jobs.views import JobView

PROBLEM_BASE = "https://atelier.dev/problems/"


class AtelierError(Exception):
    """Something the SDK raises on purpose. ``problem`` is the server's problem document
    (empty when the server did not answer one)."""

    problem: dict[str, Any] = {}  # never mutated: ApiError sets its own


class ConnectionFailed(AtelierError):
    """The server could not be reached, or the connection broke."""


class WaitTimeout(AtelierError):
    """The job did not end in time; ``job`` is the job as last seen."""

    def __init__(self, job: JobView, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")


class ApiError(AtelierError):
    """The server answered with a problem document (RFC 9457)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {self.title}: {self.detail}")

    @property
    def type(self) -> str:
        return str(self.problem.get("type", "about:blank"))

    @property
    def title(self) -> str:
        return str(self.problem.get("title", ""))

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail", ""))

    @property
    def retryable(self) -> bool:
        return bool(self.problem.get("retryable", False))

    @property
    def errors(self) -> list[dict[str, Any]]:
        """What exactly is wrong: [{field, reason}] or [{node_id, input, reason}]."""
        errors = self.problem.get("errors")
        return list(errors) if isinstance(errors, list) else []


class BadRequest(ApiError):
    """400: the request is not valid."""


class ValidationFailed(BadRequest):
    """422: one or more fields are invalid; ``errors`` names them."""


class GraphInvalid(ValidationFailed):
    """422: ComfyUI would reject the graph; ``errors`` names node and input."""


class CapabilityMissing(ValidationFailed):
    """422: no backend has the node classes or model files the job needs."""


class Unauthorized(ApiError):
    """401: a valid API key is needed."""


class Forbidden(ApiError):
    """403: the key may not do this (scope), or a signed link is invalid."""


class NotFound(ApiError):
    """404: no such thing (or not yours)."""


class JobNotFound(NotFound):
    """404: no job with this id."""


class ArtifactNotFound(NotFound):
    """404: no artifact with this id."""


class WorkflowNotFound(NotFound):
    """404: no workflow with this name."""


class Conflict(ApiError):
    """409: the request conflicts with the current state."""


class JobStateConflict(Conflict):
    """409: the job is not in a state that allows this."""


class PayloadTooLarge(ApiError):
    """413: the request is larger than the server accepts."""


class RateLimited(ApiError):
    """429: a limit was reached; ``retry_after`` says when to try again."""

    def __init__(
        self, status: int, problem: dict[str, Any], retry_after: float | None = None
    ) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after

    @property
    def limit(self) -> str | None:
        """Which limit: requests_per_minute, queued_jobs or artifact_bytes."""
        value = self.problem.get("limit")
        return str(value) if value is not None else None


class QuotaExceeded(RateLimited):
    """429: a quota (queued jobs, stored bytes) is used up."""


class ServerError(ApiError):
    """5xx: the server failed; ``retryable`` says whether trying again can help."""


BY_TYPE: dict[str, type[ApiError]] = {
    "invalid-request": BadRequest,
    "malformed-json": BadRequest,
    "validation-failed": ValidationFailed,
    "graph-invalid": GraphInvalid,
    "capability-missing": CapabilityMissing,
    "input-unavailable": ValidationFailed,
    "workflow-invalid": ValidationFailed,
    "workflow-not-convertible": ValidationFailed,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "insufficient-scope": Forbidden,
    "signature-invalid": Forbidden,
    "not-found": NotFound,
    "job-not-found": JobNotFound,
    "artifact-not-found": ArtifactNotFound,
    "workflow-not-found": WorkflowNotFound,
    "conflict": Conflict,
    "job-state-conflict": JobStateConflict,
    "request-too-large": PayloadTooLarge,
    "too-many-requests": RateLimited,
    "rate-limited": RateLimited,
    "quota-exceeded": QuotaExceeded,
}

BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def error_for(response: httpx.Response) -> ApiError:
    """The typed error for an answer of 400 or more (its body must have been read)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = (
        body
        if isinstance(body, dict)
        else {"title": response.reason_phrase, "detail": response.text[:500]}
    )
    problem.setdefault("status", response.status_code)
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_BASE)
    cls = BY_TYPE.get(slug) or BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    if issubclass(cls, RateLimited):
        return cls(response.status_code, problem, retry_after=_seconds(response))
    return cls(response.status_code, problem)


def _seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
