"""The caller of a request, the scopes, and which scope each route needs.

Scopes nest: ``admin`` may do everything (other owners' jobs too, keys, backends,
workflow changes), ``submit`` creates and manages its owner's jobs and may read them,
``read`` reads its owner's jobs and artifacts. ``metrics`` (outside the nesting) may
only scrape ``GET /metrics``, which admins may too. The rules below are the one place that
says which scope a route needs, so routers added later are covered by default (reads
need ``read``, writes need ``submit``) and only the exceptions are listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ADMIN, SUBMIT, READ = "admin", "submit", "read"
METRICS = "metrics"  # GET /metrics only: a key for Prometheus that can read no job
SCOPES = (ADMIN, SUBMIT, READ, METRICS)
METRICS_PATH = "/metrics"

OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Limits:
    """A key's overrides; None means "the server's setting"."""

    rate_limit: int | None = None
    max_queued: int | None = None
    max_running: int | None = None
    max_artifact_bytes: int | None = None


@dataclass(frozen=True)
class Caller:
    """``owner`` stamps what the caller creates (None: anonymous, open mode)."""

    owner: str | None
    scopes: frozenset[str]
    key_id: str | None = None
    limits: Limits = field(default_factory=Limits)
    signed_artifact: str | None = None  # a signed link grants this one artifact, nothing else

    @property
    def admin(self) -> bool:
        return ADMIN in self.scopes

    @property
    def visible_owner(self) -> str | None:
        """The owner filter for reads: None (everything) for admins."""
        return None if self.admin else self.owner

    def allows(self, required: str) -> bool:
        if ADMIN in self.scopes:
            return True
        if required == SUBMIT:
            return SUBMIT in self.scopes
        if required == READ:
            return bool(self.scopes & {READ, SUBMIT})
        if required == METRICS:
            return METRICS in self.scopes
        return False


ANONYMOUS = Caller(owner=None, scopes=frozenset({ADMIN}))

_ADMIN_ROUTES = [
    re.compile(r"^/api/v1/admin(/.*)?$"),
]
_ADMIN_WRITES = [
    re.compile(r"^/api/v1/backends(/.*)?$"),
    re.compile(r"^/api/v1/workflows/?$"),
    re.compile(r"^/api/v1/workflows/[^/]+(/versions(/.*)?)?/?$"),
]
# Routes that put a job in the queue: the queued-jobs and artifact-bytes quotas apply.
_ENQUEUES = [
    re.compile(r"^/api/v1/jobs/?$"),
    re.compile(r"^/api/v1/jobs/[^/]+/retry/?$"),
    re.compile(r"^/api/v1/workflows/[^/]+/jobs/?$"),
    re.compile(r"^/api/v1/pipelines/[^/]+/runs/?$"),  # the studio: runs queue jobs
    re.compile(r"^/api/v1/projects/[^/]+/generate/?$"),
    re.compile(r"^/api/v1/runs/[^/]+/(retry|steps/[^/]+/rerender)/?$"),
]
# Routes anonymous callers may read even where keys are required (the public gallery).
_PUBLIC_READS = [re.compile(r"^/api/v1/gallery/?$")]
PUBLIC = Caller(owner=None, scopes=frozenset({READ}))
_ARTIFACT = re.compile(r"^/api/v1/artifacts/([^/]+)/?$")


def required_scope(method: str, path: str) -> str:
    if path == METRICS_PATH:
        return METRICS
    if any(rule.match(path) for rule in _ADMIN_ROUTES):
        return ADMIN
    if method in ("GET", "HEAD", "OPTIONS"):
        return READ
    if any(rule.match(path) for rule in _ADMIN_WRITES):
        return ADMIN
    return SUBMIT


def public_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and any(rule.match(path) for rule in _PUBLIC_READS)


def enqueues(method: str, path: str) -> bool:
    return method == "POST" and any(rule.match(path) for rule in _ENQUEUES)


def artifact_id(path: str) -> str | None:
    match = _ARTIFACT.match(path)
    return match.group(1) if match else None
