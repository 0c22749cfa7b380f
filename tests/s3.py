"""A real S3 server for tests: moto's server mode on a loopback port, with a bucket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import free_port

BUCKET = "atelier-test"


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str

    def client(self) -> object:
        return boto3.client("s3", endpoint_url=self.endpoint_url)

    def keys(self, prefix: str = "") -> list[str]:
        answer = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def uploads_in_progress(self) -> list[str]:
        answer = self.client().list_multipart_uploads(Bucket=self.bucket)  # type: ignore[attr-defined]
        return [item["Key"] for item in answer.get("Uploads", [])]


def serve_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """Body of the ``s3_server`` fixture that test modules declare."""
    # The standard AWS variables are how operators give credentials; tests do the same.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "atelier-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "atelier-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        # moto keeps its buckets in process-wide state that outlives a server: start empty.
        httpx.post(f"http://127.0.0.1:{port}/moto-api/reset", timeout=10).raise_for_status()
        s3 = S3Server(f"http://127.0.0.1:{port}", BUCKET)
        s3.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        s3.client().create_bucket(Bucket="other-bucket")  # type: ignore[attr-defined]
        yield s3
    finally:
        server.stop()
