"""Atelier-side media work of pipeline steps: joining segments, thumbnails, file paths.

PyAV and Pillow work runs in a thread: a join of many segments takes seconds of CPU.
``atelier.media.video`` (PyAV) is imported by the steps that use it, not at start.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from atelier.db.tables import ArtifactRow, utcnow
from atelier.errors import MediaUnreadable
from atelier.media.probe import probe
from atelier.storage.base import ArtifactStore


class MediaSteps:
    def __init__(self, store: ArtifactStore, scratch: Path) -> None:
        self.store = store
        self.scratch = scratch

    def path_of(self, artifact: ArtifactRow) -> Path:
        """A local file of the artifact (the local store keeps one)."""
        path = self.store.local_path(artifact.storage_key)
        if path is None or not path.exists():
            raise MediaUnreadable(artifact.id, "the artifact's file is not on this server")
        return path

    async def join(
        self, segments: list[ArtifactRow], *, fps: int, crf: int, owner: str | None
    ) -> ArtifactRow:
        """One MP4 (H.264, yuv420p) of the segments, each shared seam frame written once."""
        from atelier.media import video

        paths = [self.path_of(segment) for segment in segments]
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.scratch) as folder:
            out = Path(folder) / "joined.mp4"
            await asyncio.to_thread(video.join_segments, paths, out, fps=fps, crf=crf)
            return await self._store_file(out, "joined.mp4", owner=owner, role="output")

    async def thumbnail(self, artifact: ArtifactRow) -> ArtifactRow | None:
        """A small WebP of an image, or of a video's poster frame; None for other kinds."""
        if artifact.kind not in ("image", "video"):
            return None
        from atelier.media import video

        data = await asyncio.to_thread(video.thumbnail, self.path_of(artifact))
        blob = await self.store.put_bytes(data)
        return ArtifactRow(
            id=str(uuid.uuid4()),
            job_id=None,
            owner=artifact.owner,
            role="thumbnail",
            node_id=None,
            filename=Path(artifact.filename).stem + ".thumb.webp",
            kind="image",
            content_type="image/webp",
            size=blob.size,
            sha256=blob.sha256,
            width=None,
            height=None,
            animated=False,
            text=None,
            storage_key=blob.key,
            created_at=utcnow(),
        )

    async def _store_file(
        self, path: Path, filename: str, *, owner: str | None, role: str
    ) -> ArtifactRow:
        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    yield chunk

        blob = await self.store.put(chunks())
        media = await asyncio.to_thread(probe, path, filename)
        return ArtifactRow(
            id=str(uuid.uuid4()),
            job_id=None,
            owner=owner,
            role=role,
            node_id=None,
            filename=filename,
            kind=media.kind,
            content_type=media.content_type,
            size=blob.size,
            sha256=blob.sha256,
            width=media.width,
            height=media.height,
            animated=media.animated,
            text=None,
            storage_key=blob.key,
            created_at=utcnow(),
        )
