"""Every error Atelier raises on purpose, in one tree.

    AtelierError                      500 internal
    ├── InvalidRequest                400 invalid-request (field, reason)
    │   ├── MalformedJson             400 malformed-json
    │   ├── UnknownQueryParameter     400 unknown-query-parameter (errors: [{field, reason}])
    │   ├── ValidationFailed          422 validation-failed (errors: [{field, reason}])
    │   ├── GraphInvalid              422 graph-invalid (errors: [{node_id, input, reason}])
    │   ├── CapabilityMissing         422 capability-missing (missing, backends)
    │   ├── InputUnavailable          422 input-unavailable (a URL input could not be fetched)
    │   └── WorkflowInvalid           422 workflow-invalid (errors: [{field|node_id, reason}])
    │       └── WorkflowNotConvertible  422 workflow-not-convertible (UI-format graph)
    ├── MediaUnreadable               422 media-unreadable (not the image or video it should be)
    ├── RequestTooLarge               413 request-too-large
    ├── RangeNotSatisfiable           416 range-not-satisfiable (with Content-Range)
    ├── Unauthorized                  401 unauthorized (with WWW-Authenticate)
    ├── Forbidden                     403 forbidden
    │   ├── InsufficientScope         403 insufficient-scope
    │   └── SignatureInvalid          403 signature-invalid
    ├── NotFound                      404 not-found
    │   ├── JobNotFound               404 job-not-found
    │   ├── ArtifactNotFound          404 artifact-not-found
    │   ├── KeyNotFound               404 key-not-found
    │   ├── WebhookNotFound           404 webhook-not-found
    │   ├── DeliveryNotFound          404 delivery-not-found
    │   ├── WorkflowNotFound          404 workflow-not-found
    │   ├── ProjectNotFound           404 project-not-found
    │   ├── CharacterNotFound         404 character-not-found
    │   ├── PipelineNotFound          404 pipeline-not-found
    │   └── RunNotFound               404 run-not-found
    ├── Conflict                      409 conflict
    │   ├── JobStateConflict          409 job-state-conflict
    │   ├── IdempotencyKeyReused      409 idempotency-key-reused
    │   ├── IdempotencyKeyInUse       409 idempotency-key-in-use
    │   ├── WorkflowExists            409 workflow-exists
    │   ├── CharacterExists           409 character-exists
    │   ├── RunStateConflict          409 run-state-conflict
    │   └── ProjectArchived           409 project-archived
    ├── TooManyRequests               429 too-many-requests (with Retry-After)
    │   ├── RateLimited               429 rate-limited
    │   └── QuotaExceeded             429 quota-exceeded
    ├── ServiceUnavailable            503 service-unavailable
    │   └── DatabaseUnavailable       503 database-unavailable (with Retry-After)
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
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the problem body."""
        return {}

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


class UnknownQueryParameter(InvalidRequest):
    """The request has a query parameter this route does not take."""

    slug = "unknown-query-parameter"
    title = "Unknown query parameter"


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


class RangeNotSatisfiable(AtelierError):
    """The requested byte range lies outside the file."""

    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail, size=size)
        self.size = size

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


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


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached right now (restarting, or the connection was cut);
    nothing was changed that the answer does not say. Retry after a moment."""

    slug = "database-unavailable"
    title = "Database unavailable"


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


# Keys, scopes, limits, idempotency and webhooks (docs/ERRORS.md lists them too).


class Unauthorized(AtelierError):
    """An API key is required: send Authorization: Bearer <key>."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="atelier"'}


class Forbidden(AtelierError):
    """This request is not allowed."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class InsufficientScope(Forbidden):
    """The API key does not have the scope this request needs."""

    slug = "insufficient-scope"
    title = "Insufficient scope"

    def __init__(self, required: str) -> None:
        super().__init__(f"this request needs the {required!r} scope", required_scope=required)


class SignatureInvalid(Forbidden):
    """The signed link is invalid or has expired."""

    slug = "signature-invalid"
    title = "Signature invalid"


class KeyNotFound(NotFound):
    """No API key with this id."""

    slug = "key-not-found"
    title = "Key not found"


class WebhookNotFound(NotFound):
    """No webhook with this id."""

    slug = "webhook-not-found"
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    """No webhook delivery with this id."""

    slug = "delivery-not-found"
    title = "Delivery not found"


class IdempotencyKeyReused(Conflict):
    """This Idempotency-Key was already used with a different request."""

    slug = "idempotency-key-reused"
    title = "Idempotency key reused"


class IdempotencyKeyInUse(Conflict):
    """A request with this Idempotency-Key is still being processed."""

    slug = "idempotency-key-in-use"
    title = "Idempotency key in use"
    retryable = True


class TooManyRequests(AtelierError):
    """Too many requests; wait Retry-After seconds."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"
    retryable = True

    def __init__(self, detail: str, *, limit: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, limit=limit, retry_after=retry_after, **extra)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(TooManyRequests):
    """The API key made more requests per minute than it may."""

    slug = "rate-limited"
    title = "Rate limited"


class QuotaExceeded(TooManyRequests):
    """The owner is at a quota (queued jobs, running jobs or stored artifact bytes)."""

    slug = "quota-exceeded"
    title = "Quota exceeded"


# Workflow templates, media inputs and capability checks (docs/ERRORS.md lists them too).


class CapabilityMissing(InvalidRequest):
    """No backend has every node class and model file this job needs."""

    status = 422
    slug = "capability-missing"
    title = "Capability missing"

    def __init__(
        self, detail: str, *, missing: dict[str, list[str]], backends: list[dict[str, Any]]
    ) -> None:
        super().__init__(detail, missing=missing, backends=backends)


class InputUnavailable(InvalidRequest):
    """A media input could not be fetched (its URL did not answer, or not in time)."""

    status = 422
    slug = "input-unavailable"
    title = "Input unavailable"
    retryable = True


class WorkflowInvalid(InvalidRequest):
    """The workflow template (its manifest or graph) cannot be used."""

    status = 422
    slug = "workflow-invalid"
    title = "Workflow invalid"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        first = errors[0] if errors else {}
        where = first.get("field") or (
            f"node {first['node_id']}" if first.get("node_id") is not None else None
        )
        reason = str(first.get("reason", "invalid"))
        super().__init__(detail or (f"{where}: {reason}" if where else reason), errors=errors)
        self.errors = errors


class WorkflowNotConvertible(WorkflowInvalid):
    """The UI-format workflow cannot be converted to ComfyUI's API format."""

    slug = "workflow-not-convertible"
    title = "Workflow not convertible"


class WorkflowNotFound(NotFound):
    """No workflow with this name."""

    slug = "workflow-not-found"
    title = "Workflow not found"


class WorkflowExists(Conflict):
    """A workflow with this name exists already (PUT replaces it)."""

    slug = "workflow-exists"
    title = "Workflow exists"


# The studio (issue 8): projects, characters, pipeline runs, the gallery.


class ProjectNotFound(NotFound):
    """No project with this id (or not yours)."""

    slug = "project-not-found"
    title = "Project not found"


class CharacterNotFound(NotFound):
    """No character with this id or name in this project."""

    slug = "character-not-found"
    title = "Character not found"


class PipelineNotFound(NotFound):
    """No pipeline with this name."""

    slug = "pipeline-not-found"
    title = "Pipeline not found"


class RunNotFound(NotFound):
    """No pipeline run with this id (or not yours)."""

    slug = "run-not-found"
    title = "Run not found"


class CharacterExists(Conflict):
    """The project has a character with this name already."""

    slug = "character-exists"
    title = "Character exists"


class RunStateConflict(Conflict):
    """The run (or its step) is not in a state that allows this."""

    slug = "run-state-conflict"
    title = "Run state conflict"


class ProjectArchived(Conflict):
    """The project is archived: unarchive it (PATCH status) before making anything in it."""

    slug = "project-archived"
    title = "Project archived"


# -- media (studio) ---------------------------------------------------------------------


class MediaUnreadable(AtelierError):
    """A file is not the image or video it should be (unreadable, no video stream, empty)."""

    status = 422
    slug = "media-unreadable"
    title = "Media unreadable"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}", path=path, reason=reason)
        self.path = path
        self.reason = reason


# The cluster shape: S3 storage (docs/CLUSTER.md).


class StorageUnavailable(ServiceUnavailable):
    """The artifact store (an S3 bucket) could not be reached or refused the request."""

    slug = "storage-unavailable"
    title = "Storage unavailable"
