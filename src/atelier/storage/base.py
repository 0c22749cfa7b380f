"""The ArtifactStore seam: content-addressed blobs, so identical outputs share one file."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


class ArtifactStore(Protocol):
    # True when local_path() gives files on this machine (the server can probe and
    # send them itself); False for object storage.
    local: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        """Store a stream; raises RequestTooLarge past ``max_bytes`` and stores nothing."""
        ...

    async def put_bytes(self, data: bytes) -> StoredBlob: ...

    def read(self, key: str, *, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]: ...

    def local_path(self, key: str) -> Path | None:
        """A file path the server can send directly (with Range), or None."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def download_url(self, key: str, *, filename: str, content_type: str) -> str | None:
        """A URL the client may fetch the bytes from directly (presigned, CDN), to
        redirect to; None: the server sends the bytes itself."""
        ...

    async def fetch_input(self, url: str, *, field: str, max_bytes: int) -> tuple[bytes, str]:
        """An input given as an object-store URL (``s3://bucket/key``): (bytes, filename).
        Raises InputUnavailable when this store cannot read such URLs."""
        ...
