"""The Python SDK: ``Atelier`` (sync) and ``AsyncAtelier`` (asyncio) talk to an Atelier
server over HTTP, answer typed models, and raise typed errors (docs/SDK.md).

    from atelier.client import Atelier

    with Atelier("http://127.0.0.1:8000", api_key="atk_...") as atelier:
        job = atelier.run("txt2img_sd15", {"prompt": "a red fox in the snow"})
        atelier.save_outputs(job, "out/")

The public names are the ones in ``__all__`` (pinned by tests/unit/test_sdk_exports.py).
"""

from atelier.client.async_client import AsyncAtelier
from atelier.client.errors import (
    ApiError,
    ArtifactNotFound,
    AtelierError,
    BadRequest,
    CapabilityMissing,
    Conflict,
    ConnectionFailed,
    Forbidden,
    GraphInvalid,
    JobNotFound,
    JobStateConflict,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    ServerError,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
    WorkflowNotFound,
)
from atelier.client.models import (
    Artifact,
    Attempt,
    BackendFit,
    Event,
    Job,
    JobError,
    JobPage,
    KeyCreated,
    KeyView,
    WorkflowDetail,
    WorkflowSummary,
)
from atelier.client.studio_base import RunWaitTimeout
from atelier.client.studio_models import (
    Bible,
    Character,
    GalleryItem,
    GalleryPage,
    Pipeline,
    Project,
    ProjectDefaults,
    ProjectPage,
    Reference,
    Run,
    RunPage,
    SegmentStatus,
    Step,
    VisualStyle,
)
from atelier.client.sync import AtelierClient  # the CLI's older dict client
from atelier.client.sync_client import Atelier

__all__ = [
    "ApiError",
    "Artifact",
    "ArtifactNotFound",
    "AsyncAtelier",
    "Atelier",
    "AtelierClient",
    "AtelierError",
    "Attempt",
    "BackendFit",
    "BadRequest",
    "Bible",
    "CapabilityMissing",
    "Character",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "Forbidden",
    "GalleryItem",
    "GalleryPage",
    "GraphInvalid",
    "Job",
    "JobError",
    "JobNotFound",
    "JobPage",
    "JobStateConflict",
    "KeyCreated",
    "KeyView",
    "NotFound",
    "PayloadTooLarge",
    "Pipeline",
    "Project",
    "ProjectDefaults",
    "ProjectPage",
    "QuotaExceeded",
    "RateLimited",
    "Reference",
    "Run",
    "RunPage",
    "RunWaitTimeout",
    "SegmentStatus",
    "ServerError",
    "Step",
    "Unauthorized",
    "ValidationFailed",
    "VisualStyle",
    "WaitTimeout",
    "WorkflowDetail",
    "WorkflowNotFound",
    "WorkflowSummary",
]
