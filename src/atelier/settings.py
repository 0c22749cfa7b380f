"""The one Settings object.

Every knob of the server lives here. Values come from keyword arguments (the CLI fills
them in from its flags) or from environment variables prefixed ``ATELIER_``. Nothing
reads the environment at import time: ``Settings()`` is built by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the API listens on.")
    port: int = Field(default=8000, description="Port the API listens on.")
    data_dir: Path = Field(
        default=Path("atelier-data"), description="SQLite database and artifact files live here."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file (WAL) in the data dir. "
        "PostgreSQL: postgresql+asyncpg://user@host/db (postgresql:// is accepted too).",
    )
    backends: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="ComfyUI base URLs, optionally name=URL; "
        "env ATELIER_BACKENDS is comma-separated.",
    )
    demo: bool = Field(default=False, description="Start a fake ComfyUI in-process.")
    public_url: str | None = Field(
        default=None, description="Base URL used in links when there is no request."
    )

    # Backends and dispatch.
    health_interval: float = Field(
        default=5.0, gt=0, description="Seconds between health checks of a backend."
    )
    health_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a backend has to answer an HTTP request."
    )
    backend_slots: int = Field(
        default=2,
        ge=1,
        description="Jobs in flight per backend: 1 running plus the rest waiting in "
        "ComfyUI's own queue (pipelined), so the GPU never idles between jobs.",
    )
    poll_interval: float = Field(default=2.0, gt=0, description="Scheduler safety-net poll.")
    check_interval: float = Field(
        default=2.0, gt=0, description="Seconds of WebSocket silence before a runner asks /queue."
    )
    backend_lost_timeout: float = Field(
        default=30.0, gt=0, description="Unreachable this long mid-job: the job is requeued."
    )
    max_attempts: int = Field(default=3, ge=1, description="Backend losses before a job fails.")
    fair_share: bool = Field(
        default=True, description="Within a priority, owners take turns (else: oldest first)."
    )
    scheduler: Literal["smart", "round_robin"] = Field(
        default="smart",
        description="smart: the policy in docs/SCHEDULING.md; round_robin: plain "
        "rotation over backends (for comparison).",
    )
    affinity: bool = Field(
        default=True, description="Prefer the backend that has the job's checkpoint loaded."
    )
    affinity_max_wait: float = Field(
        default=30.0, ge=0, description="Seconds after which a job takes any backend."
    )
    max_running_per_owner: int = Field(
        default=0, ge=0, description="Jobs in flight per owner; 0 means no cap."
    )
    progress_interval: float = Field(
        default=0.1, ge=0, description="Minimum seconds between persisted progress events."
    )

    # Request limits.
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest request body; larger is 413."
    )
    max_graph_nodes: int = Field(
        default=2000, gt=0, description="Most nodes a submitted graph may have."
    )
    max_wait_seconds: float = Field(default=60.0, ge=0, description="Cap for Prefer: wait=N.")
    max_json_depth: int = Field(
        default=64, ge=2, le=500, description="Deepest nesting a JSON body may have; deeper is 422."
    )

    # Workflow templates and media inputs (docs/WORKFLOWS.md).
    input_max_bytes: int = Field(
        default=50 * 1024 * 1024,
        gt=0,
        description="Largest media input (upload, base64 or URL); larger is refused.",
    )
    input_fetch_timeout: float = Field(
        default=20.0, gt=0, description="Seconds Atelier spends fetching one URL input."
    )

    # Keys, limits, idempotency and webhooks (README: "Running it for a team").
    auth_mode: Literal["auto", "required", "open"] = Field(
        default="auto",
        description="auto: open to loopback clients until the first API key exists, then "
        "every /api/v1 call needs a key; required: always a key; open: keys optional.",
    )
    signing_secret: str | None = Field(
        default=None,
        description="Secret for signed artifact links; default: generated once and kept "
        "in <data dir>/signing.key.",
    )
    artifact_url_ttl: int = Field(
        default=86400, gt=0, description="Seconds a signed artifact link stays valid."
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per API key; 0 means no limit."
    )
    max_queued_per_owner: int = Field(
        default=1000, ge=0, description="Queued jobs an owner may have; 0 means no limit."
    )
    max_artifact_bytes_per_owner: int = Field(
        default=0, ge=0, description="Stored output bytes per owner before submits get 429."
    )
    idempotency_ttl: float = Field(
        default=86400.0, gt=0, description="Seconds an Idempotency-Key is remembered."
    )
    url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or networks (CIDR) that webhook and URL-input targets may use "
        "even though they are not public (loopback, private); comma-separated in env.",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a webhook receiver has to answer."
    )
    webhook_retry_base: float = Field(
        default=5.0, gt=0, description="First webhook retry delay; doubles each attempt."
    )
    webhook_retry_max: float = Field(
        default=3600.0, gt=0, description="Longest delay between two webhook attempts."
    )
    webhook_retry_window: float = Field(
        default=86400.0, gt=0, description="Seconds a failing webhook delivery is retried."
    )
    webhook_progress_interval: float = Field(
        default=1.0, ge=0, description="At most one progress webhook per job this often."
    )
    max_webhooks_per_owner: int = Field(
        default=100, gt=0, description="Standing webhook subscriptions per owner."
    )

    # Metrics and logs (docs/OPERATIONS.md).
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text for a terminal; json: one object per line, with job_id, attempt "
        "and backend on every line about a job.",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description="The event loop `atelier serve` runs on. asyncio answers in arrival "
        "order under load; uvloop answers about 10% more requests a second when saturated, "
        "but serves new requests before finished ones, so its slowest answers wait up to "
        "ten times longer (docs/PERFORMANCE.md, section 5).",
    )

    # The read path (jobs/readmodel.py).
    job_cache_size: int = Field(
        default=4096,
        ge=0,
        description="Status documents of recently read jobs held in memory for "
        "GET /api/v1/jobs/{id}; 0 turns the read model off.",
    )
    job_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Longest a held status document is served; this process's own changes "
        "drop it at once, so this bounds how late a change made by another process shows.",
    )

    # The studio: projects, pipeline runs, the gallery (docs/STUDIO.md).
    studio_resync_interval: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between the run engine's resyncs of every active run from "
        "the tables (job events drive it in between).",
    )
    models_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="name=path of a backend's ComfyUI models folder, readable here, so "
        "GET /api/v1/models shows file sizes; comma-separated in env.",
    )

    # Fake ComfyUI for --demo.
    demo_step_time: float = Field(
        default=0.05, ge=0, description="--demo: seconds per simulated sampler step."
    )

    # Cluster shape: API replicas, workers, S3, shared limits (docs/CLUSTER.md).
    shape: Literal["single", "cluster"] = Field(
        default="single",
        description="single: this process dispatches to its backends; cluster: an API "
        "replica on PostgreSQL that dispatches nothing, `atelier worker` processes run jobs.",
    )
    storage_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix for artifacts in S3-compatible storage; default: "
        "files under the data dir. Credentials and region: the standard AWS_* variables.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 server other than AWS (MinIO, R2, SeaweedFS)."
    )
    s3_region: str | None = Field(
        default=None, description="S3 region; default: AWS_REGION / AWS_DEFAULT_REGION."
    )
    s3_public_url: str | None = Field(
        default=None,
        description="Public base URL (a CDN in front of the bucket): artifact links redirect "
        "to <this>/<key> instead of a presigned URL.",
    )
    s3_part_size: int = Field(
        default=8 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Bytes per multipart-upload part (the most an upload holds in memory).",
    )
    s3_input_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Buckets besides the artifact bucket that s3:// inputs may name; "
        "comma-separated in env.",
    )
    event_gap_grace: float = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL: longest wait of live events for a transaction that holds "
        "a lower event id and neither commits nor rolls back (docs/CLUSTER.md).",
    )
    worker_heartbeat_interval: float = Field(
        default=2.0, gt=0, description="Seconds between a worker's heartbeats."
    )
    worker_lease_timeout: float = Field(
        default=20.0,
        gt=0,
        description="A worker silent this long has lost its jobs: they are requeued "
        "(attempt + 1) on other workers.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db: rate limits and counters shared by every "
        "replica; default: per process.",
    )

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError(f"storage URL must be s3://bucket[/prefix]: {value!r}")
        return value

    @field_validator("backends", "url_allowlist", "models_dirs", "s3_input_buckets", mode="before")
    @classmethod
    def _split_backends(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("backends")
    @classmethod
    def _check_backends(cls, value: list[str]) -> list[str]:
        checked = []
        for spec in value:
            name, sep, url = spec.partition("=")
            if not sep or "://" in name:
                name, url = "", spec
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"backend URL must start with http:// or https://: {spec!r}")
            checked.append(f"{name}={url.rstrip('/')}" if name else url.rstrip("/"))
        return checked

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """Settings from CLI flags: a flag left unset (None, empty) keeps the env/default."""
        return cls(**{key: value for key, value in options.items() if value})

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'atelier.db'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        return url

    def models_folders(self) -> list[tuple[str, Path]]:
        """(backend name, models folder) pairs from ``models_dirs``."""
        pairs = []
        for spec in self.models_dirs:
            name, sep, path = spec.partition("=")
            if sep and name:
                pairs.append((name, Path(path)))
        return pairs

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"
