"""Where artifact bytes live: the ArtifactStore protocol and its implementations."""

from atelier.settings import Settings
from atelier.storage.base import ArtifactStore, StoredBlob
from atelier.storage.local import LocalArtifactStore

__all__ = ["ArtifactStore", "LocalArtifactStore", "StoredBlob", "build_store"]


def build_store(settings: Settings) -> ArtifactStore:
    """Local files under the data dir, or the S3 bucket of ``storage_url``."""
    if settings.storage_url is None:
        return LocalArtifactStore(settings.artifacts_dir)
    from atelier.storage.s3 import S3ArtifactStore, S3Location  # only S3 needs aioboto3

    return S3ArtifactStore(
        S3Location.parse(settings.storage_url),
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        public_url=settings.s3_public_url,
        url_ttl=settings.artifact_url_ttl,
        part_size=settings.s3_part_size,
        input_buckets=settings.s3_input_buckets,
    )
