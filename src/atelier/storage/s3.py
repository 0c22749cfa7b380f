"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, R2, SeaweedFS), through aioboto3.

Key layout: ``{prefix}/{sha256[:2]}/{sha256}``, the same content address as the local
store. Artifacts are rows that point at a key; several rows share one key (an input
reused by a later job, a cached re-run that produced the same file) and a key is deleted
only when its last row goes. A per-job path such as ``{workflow}/{job_id}/{filename}``
would break that sharing; the filename and content type a client sees come from the
artifact row (presigned links carry them as response headers).

Uploads stream: chunks gather into parts of ``part_size`` bytes (S3's minimum is 5 MiB)
and go out as a multipart upload to ``{prefix}/.incoming/{uuid}``, hashing as they go;
only one part is ever held in memory. Once the hash is known the object is copied
server-side to its content address (or dropped, when that address exists already).
Downloads are presigned GET URLs, or ``public_url + key`` behind a CDN.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from atelier.errors import InputUnavailable, RequestTooLarge, StorageUnavailable
from atelier.storage.base import StoredBlob

MIN_PART = 5 * 1024 * 1024  # S3's smallest part (but the last)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


# Enough of each format's first bytes to label an object for a CDN; the artifact row
# keeps the probed type, this only matters to clients that fetch the key directly.
_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF8", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"fLaC", "audio/flac"),
    (8, b"WAVE", "audio/wav"),
    (0, b"OggS", "audio/ogg"),
]


def guess_content_type(head: bytes) -> str:
    for offset, magic, content_type in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    return "application/octet-stream"


class S3ArtifactStore:
    local = False

    def __init__(
        self,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_url: str | None = None,
        url_ttl: int = 3600,
        part_size: int = 8 * 1024 * 1024,
        input_buckets: list[str] | None = None,
    ) -> None:
        self.location = location
        self.endpoint_url = endpoint_url
        self.public_url = public_url.rstrip("/") if public_url else None
        self.url_ttl = url_ttl
        self.part_size = max(part_size, MIN_PART)
        # Buckets that s3:// inputs may name: our own, plus those the operator allows.
        self.input_buckets = {location.bucket, *(input_buckets or [])}
        # Credentials and region: the standard AWS chain (AWS_ACCESS_KEY_ID, ...).
        self._session = aioboto3.Session(region_name=region)
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def start(self) -> None:
        config = Config(retries={"max_attempts": 5, "mode": "standard"})
        self._client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self.endpoint_url, config=config)
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def s3(self) -> Any:
        if self._client is None:
            raise StorageUnavailable("the S3 artifact store is not started")
        return self._client

    def key_for(self, digest: str) -> str:
        return self.location.key(f"{digest[:2]}/{digest}")

    def _key(self, key: str) -> str:
        # Keys are our own sha256 names; refuse anything else rather than trust it.
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not an artifact key: {key!r}")
        return self.key_for(key)

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        incoming = self.location.key(f".incoming/{uuid.uuid4().hex}")
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        content_type: str | None = None
        bucket = self.location.bucket
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise RequestTooLarge(f"larger than {max_bytes} bytes")
                digest.update(chunk)
                buffer += chunk
                if content_type is None and len(buffer) >= 16:
                    content_type = guess_content_type(bytes(buffer[:16]))
                if len(buffer) >= self.part_size:
                    if upload_id is None:
                        created = await self.s3.create_multipart_upload(
                            Bucket=bucket, Key=incoming, ContentType=content_type
                        )
                        upload_id = created["UploadId"]
                    parts.append(await self._part(incoming, upload_id, len(parts) + 1, buffer))
                    buffer = bytearray()
            content_type = content_type or guess_content_type(bytes(buffer))
            key = digest.hexdigest()
            final = self.key_for(key)
            if upload_id is None:
                # Small enough for one request: no multipart, no copy.
                if not await self._exists(final):
                    await self.s3.put_object(
                        Bucket=bucket, Key=final, Body=bytes(buffer), ContentType=content_type
                    )
                return StoredBlob(key=key, size=size, sha256=key)
            if buffer:
                parts.append(await self._part(incoming, upload_id, len(parts) + 1, buffer))
            await self.s3.complete_multipart_upload(
                Bucket=bucket,
                Key=incoming,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            upload_id = None
            if not await self._exists(final):
                await self.s3.copy(
                    {"Bucket": bucket, "Key": incoming},
                    bucket,
                    final,
                    ExtraArgs={"ContentType": content_type, "MetadataDirective": "REPLACE"},
                )
            await self.s3.delete_object(Bucket=bucket, Key=incoming)
            return StoredBlob(key=key, size=size, sha256=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"S3 upload failed: {exc}") from exc
        finally:
            if upload_id is not None:
                await self._abort(incoming, upload_id)

    async def _part(self, key: str, upload_id: str, number: int, data: bytearray) -> dict[str, Any]:
        answer = await self.s3.upload_part(
            Bucket=self.location.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=bytes(data),
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def _abort(self, key: str, upload_id: str) -> None:
        # If even this fails, a bucket lifecycle rule removes the abandoned upload
        # (docs/DEPLOY.md).
        with contextlib.suppress(BotoCoreError, ClientError):
            await self.s3.abort_multipart_upload(
                Bucket=self.location.bucket, Key=key, UploadId=upload_id
            )

    async def put_bytes(self, data: bytes) -> StoredBlob:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put(one())

    async def read(self, key: str, *, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        try:
            answer = await self.s3.get_object(Bucket=self.location.bucket, Key=self._key(key))
            body = answer["Body"]
            try:
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk
            finally:
                body.close()
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"S3 download failed: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    async def exists(self, key: str) -> bool:
        return await self._exists(self._key(key))

    async def _exists(self, full_key: str) -> bool:
        try:
            await self.s3.head_object(Bucket=self.location.bucket, Key=full_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageUnavailable(f"S3 lookup failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 lookup failed: {exc}") from exc
        return True

    async def delete(self, key: str) -> None:
        try:
            await self.s3.delete_object(Bucket=self.location.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"S3 delete failed: {exc}") from exc

    async def download_url(self, key: str, *, filename: str, content_type: str) -> str | None:
        """Where a client gets the bytes: the CDN address, or a presigned GET link that
        makes S3 answer with the artifact's own name and type."""
        full_key = self._key(key)
        if self.public_url:
            return f"{self.public_url}/{quote(full_key)}"
        url: str = await self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.location.bucket,
                "Key": full_key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": f'inline; filename="{filename}"',
            },
            ExpiresIn=self.url_ttl,
        )
        return url

    async def fetch_input(self, url: str, *, field: str, max_bytes: int) -> tuple[bytes, str]:
        """An ``s3://bucket/key`` input, read with our credentials from an allowed bucket."""
        try:
            where = S3Location.parse(url)
        except ValueError as exc:
            raise InputUnavailable(f"{field}: {exc}", field=field) from exc
        if where.bucket not in self.input_buckets or not where.prefix:
            raise InputUnavailable(
                f"{field}: bucket {where.bucket!r} is not one Atelier may read "
                "(ATELIER_S3_INPUT_BUCKETS)",
                field=field,
            )
        try:
            answer = await self.s3.get_object(Bucket=where.bucket, Key=where.prefix)
            if int(answer.get("ContentLength") or 0) > max_bytes:
                answer["Body"].close()
                raise RequestTooLarge(
                    f"{field}: the input is larger than {max_bytes} bytes",
                    errors=[{"field": field, "reason": f"larger than {max_bytes} bytes"}],
                )
            body = answer["Body"]
            try:
                data: bytes = await body.read()
            finally:
                body.close()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise InputUnavailable(f"{field}: S3 answered {code}", field=field) from exc
        except BotoCoreError as exc:
            raise InputUnavailable(f"{field}: S3 unreachable ({exc})", field=field) from exc
        return data, Path(where.prefix).name or "input"
