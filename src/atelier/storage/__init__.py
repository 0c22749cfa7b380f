"""Where artifact bytes live: the ArtifactStore protocol and its implementations."""

from atelier.storage.base import ArtifactStore, StoredBlob
from atelier.storage.local import LocalArtifactStore

__all__ = ["ArtifactStore", "LocalArtifactStore", "StoredBlob"]
