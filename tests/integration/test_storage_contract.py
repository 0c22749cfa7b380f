"""One contract for every ArtifactStore: local files and a real S3 server (moto, loopback).

Each test runs once per store. Store-specific checks (no orphaned temporary files or
multipart uploads) go through ``leftovers``, which looks at the real medium.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from atelier.errors import InputUnavailable, RequestTooLarge
from atelier.storage import ArtifactStore, LocalArtifactStore
from atelier.storage.s3 import S3ArtifactStore, S3Location
from tests.s3 import S3Server, serve_s3

PART = 5 * 1024 * 1024


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    yield from serve_s3(monkeypatch)


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    made: ArtifactStore
    if request.param == "local":
        made = LocalArtifactStore(tmp_path / "artifacts")
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        made = S3ArtifactStore(
            S3Location(s3.bucket, "studio/artifacts"),
            endpoint_url=s3.endpoint_url,
            part_size=PART,
            input_buckets=["shared-inputs"],
        )
    await made.start()
    try:
        yield made
    finally:
        await made.close()


def leftovers(store: ArtifactStore, request: pytest.FixtureRequest) -> list[str]:
    """Temporary files or unfinished uploads a put left behind."""
    if isinstance(store, LocalArtifactStore):
        return sorted(p.name for p in (store.root / ".incoming").iterdir())
    s3: S3Server = request.getfixturevalue("s3_server")
    return s3.keys("studio/artifacts/.incoming") + s3.uploads_in_progress()


async def chunks_of(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: ArtifactStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])


async def test_put_read_exists_delete(store: ArtifactStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(1000)
    blob = await store.put(chunks_of(data, 100))
    assert blob.sha256 == blob.key == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert await store.exists(blob.key)
    assert await read_all(store, blob.key) == data
    await store.delete(blob.key)
    assert not await store.exists(blob.key)
    await store.delete(blob.key)  # deleting twice is fine


async def test_identical_content_shares_one_key(store: ArtifactStore) -> None:
    first = await store.put_bytes(b"same bytes")
    second = await store.put(chunks_of(b"same bytes", 3))
    assert first == second
    assert await read_all(store, first.key) == b"same bytes"


async def test_large_stream_in_parts(store: ArtifactStore, request: pytest.FixtureRequest) -> None:
    # Larger than two S3 parts: the S3 store sends a three-part multipart upload.
    data = os.urandom(2 * PART + 12345)
    blob = await store.put(chunks_of(data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert hashlib.sha256(await read_all(store, blob.key)).hexdigest() == blob.sha256
    assert leftovers(store, request) == []


async def test_too_large_stores_nothing(
    store: ArtifactStore, request: pytest.FixtureRequest
) -> None:
    data = os.urandom(PART + 100)
    with pytest.raises(RequestTooLarge):
        await store.put(chunks_of(data), max_bytes=PART + 10)
    assert not await store.exists(hashlib.sha256(data).hexdigest())
    assert leftovers(store, request) == []


async def test_foreign_keys_are_refused(store: ArtifactStore) -> None:
    for key in ("../../etc/passwd", "a" * 63, "A" * 64):
        with pytest.raises(ValueError):
            await store.exists(key)


async def test_download_url(store: ArtifactStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"pixels"
    blob = await store.put_bytes(data)
    url = await store.download_url(blob.key, filename="cat.png", content_type="image/png")
    if store.local:
        assert url is None  # the API sends local files itself
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"] == "image/png"
    assert 'filename="cat.png"' in answer.headers["content-disposition"]


async def test_inputs_from_s3_urls(store: ArtifactStore, request: pytest.FixtureRequest) -> None:
    if store.local:
        with pytest.raises(InputUnavailable, match="need S3"):
            await store.fetch_input("s3://any/key.png", field="image", max_bytes=100)
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    s3.client().put_object(Bucket=s3.bucket, Key="uploads/cat.png", Body=b"cat")  # type: ignore[attr-defined]
    s3.client().put_object(Bucket="other-bucket", Key="secret.png", Body=b"no")  # type: ignore[attr-defined]
    data, name = await store.fetch_input(
        f"s3://{s3.bucket}/uploads/cat.png", field="image", max_bytes=100
    )
    assert (data, name) == (b"cat", "cat.png")
    with pytest.raises(InputUnavailable, match="not one Atelier may read"):
        await store.fetch_input("s3://other-bucket/secret.png", field="image", max_bytes=100)
    with pytest.raises(InputUnavailable, match="NoSuchKey"):
        await store.fetch_input(f"s3://{s3.bucket}/missing.png", field="image", max_bytes=100)
    with pytest.raises(RequestTooLarge):
        await store.fetch_input(f"s3://{s3.bucket}/uploads/cat.png", field="image", max_bytes=2)


def test_public_url_layout() -> None:
    store = S3ArtifactStore(
        S3Location.parse("s3://media/studio/out"), public_url="https://cdn.example.com/"
    )
    digest = "ab" + "0" * 62
    assert store.key_for(digest) == f"studio/out/ab/{digest}"
    with pytest.raises(ValueError):
        S3Location.parse("https://media/out")
