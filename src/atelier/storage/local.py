"""Artifacts as files under ``<data dir>/artifacts``, named by their sha256."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from atelier.errors import InputUnavailable, RequestTooLarge
from atelier.storage.base import StoredBlob


class LocalArtifactStore:
    local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / ".incoming"
        self._incoming.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys are our own sha256 names; refuse anything else rather than trust it.
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not an artifact key: {key!r}")
        return self.root / key[:2] / key

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        digest = hashlib.sha256()
        size = 0
        temporary = self._incoming / uuid.uuid4().hex
        try:
            with temporary.open("wb") as file:
                async for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise RequestTooLarge(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    file.write(chunk)
            key = digest.hexdigest()
            final = self._path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return StoredBlob(key=key, size=size, sha256=key)

    async def put_bytes(self, data: bytes) -> StoredBlob:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put(one())

    async def read(self, key: str, *, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        with self._path(key).open("rb") as file:
            while chunk := file.read(chunk_size):
                yield chunk

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def exists(self, key: str) -> bool:
        return self._path(key).exists()

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def download_url(self, key: str, *, filename: str, content_type: str) -> str | None:
        return None  # the API sends the file itself (with Range)

    async def fetch_input(self, url: str, *, field: str, max_bytes: int) -> tuple[bytes, str]:
        raise InputUnavailable(
            f"{field}: s3:// inputs need S3 artifact storage (ATELIER_STORAGE_URL)", field=field
        )
