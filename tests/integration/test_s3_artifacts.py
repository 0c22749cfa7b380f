"""A real server on S3 storage (moto on loopback): outputs land in the bucket under their
content address, artifact URLs redirect to presigned links (or the CDN), and s3:// inputs
are read from allowed buckets only."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.graphs import image_graph
from tests.s3 import S3Server, serve_s3
from tests.workflow_support import png, problem, run


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    yield from serve_s3(monkeypatch)


async def test_outputs_go_to_the_bucket_and_download_by_redirect(
    server_factory: Any, fake: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        [f"a={fake.url}"],
        storage_url=f"s3://{s3_server.bucket}/renders",
        s3_endpoint_url=s3_server.endpoint_url,
    )
    async with server.client() as client:
        response = await client.post(
            "/api/v1/jobs",
            json={"graph": image_graph(color=0x102030, size=40)},
            headers={"Prefer": "wait=20"},
        )
        job = response.json()
        assert job["status"] == "completed", job
        (output,) = job["outputs"]
        # Probed on the way to the bucket, though the server keeps no file of it.
        assert (output["kind"], output["content_type"]) == ("image", "image/png")
        assert (output["width"], output["height"]) == (40, 40)
        key = f"renders/{output['sha256'][:2]}/{output['sha256']}"
        assert s3_server.keys("renders/") == [key]
        assert not (server.settings.artifacts_dir).exists() or not any(
            server.settings.artifacts_dir.rglob("*.png")
        )

        redirect = await client.get(output["url"])
        assert redirect.status_code == 307
        location = redirect.headers["location"]
        assert location.startswith(f"{s3_server.endpoint_url}/{s3_server.bucket}/{key}?")
        download = await client.get(location)
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"
        assert hashlib.sha256(download.content).hexdigest() == output["sha256"]
        image = Image.open(io.BytesIO(download.content))
        assert image.convert("RGB").getpixel((5, 5)) == (0xEF, 0xDF, 0xCF)


async def test_cdn_links_and_s3_inputs(
    server_factory: Any, fake: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        [f"a={fake.url}"],
        storage_url=f"s3://{s3_server.bucket}",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_public_url="https://cdn.example.com/media",
    )
    picture = png((0, 0, 0), (16, 16))
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_server.bucket, Key="incoming/black.png", Body=picture)  # type: ignore[attr-defined]
    s3.put_object(Bucket="other-bucket", Key="private.png", Body=picture)  # type: ignore[attr-defined]
    async with server.client() as client:
        job = await run(client, "invert", {"image": f"s3://{s3_server.bucket}/incoming/black.png"})
        (output,) = job["outputs"]
        redirect = await client.get(output["url"])
        assert redirect.status_code == 307
        digest = output["sha256"]
        assert (
            redirect.headers["location"] == f"https://cdn.example.com/media/{digest[:2]}/{digest}"
        )

        refused = await client.post(
            "/api/v1/workflows/invert/jobs", json={"image": "s3://other-bucket/private.png"}
        )
        body = problem(refused, 422, "input-unavailable")
        assert "other-bucket" in body["detail"]
        jobs = (await client.get("/api/v1/jobs")).json()
        assert len(jobs["items"]) == 1  # the refused request created nothing
