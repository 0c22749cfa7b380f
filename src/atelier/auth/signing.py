"""Signed, expiring artifact links that work without a key (browsers, CDNs).

The signature is an HMAC-SHA256 over the artifact id and the expiry (unix seconds). The
expiry is rounded up to a whole bucket so that the same artifact gets the same URL for a
while, which lets browsers and CDNs cache it. The secret comes from settings or is made
once and kept in ``<data dir>/signing.key`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

from atelier.errors import SignatureInvalid

BUCKET = 3600  # seconds; expiries are rounded up to this


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "signing.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(32).encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as file:
        file.write(value)
    return value


class UrlSigner:
    def __init__(self, secret: bytes, *, ttl: int) -> None:
        self._secret = secret
        self.ttl = ttl

    def signature(self, artifact_id: str, expires: int) -> str:
        message = f"artifact:{artifact_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, artifact_id: str, *, now: float | None = None) -> str:
        now = time.time() if now is None else now
        expires = math.ceil((now + self.ttl) / BUCKET) * BUCKET
        return urlencode({"expires": expires, "sig": self.signature(artifact_id, expires)})

    def url(self, base_url: str, artifact_id: str) -> str:
        return f"{base_url.rstrip('/')}/api/v1/artifacts/{artifact_id}?{self.query(artifact_id)}"

    def verify(self, artifact_id: str, expires: str, signature: str) -> None:
        if not expires.isdigit() or len(expires) > 12 or len(signature) != 64:
            raise SignatureInvalid("the signed link is malformed")
        expected = self.signature(artifact_id, int(expires))
        if not hmac.compare_digest(expected, signature.lower()):
            raise SignatureInvalid("the signed link is invalid")
        if int(expires) < time.time():
            raise SignatureInvalid("the signed link has expired")
