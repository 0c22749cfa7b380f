"""Media inputs: files a job takes (uploads, base64, data: URIs, URLs, earlier outputs).

Every input becomes an artifact with role ``input``: the bytes go to the content-addressed
store, the content type is sniffed (never taken from the client), and a parameter that
wants an image refuses anything else. URLs are fetched by Atelier itself with a size
limit and a timeout, and only from public addresses (``net.check_url``; the
``url_allowlist`` setting opens exceptions); the connection goes to the address that
was checked, so a second DNS answer cannot redirect it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import tempfile
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from PIL import Image, UnidentifiedImageError

from atelier.db.tables import ArtifactRow, utcnow
from atelier.db.unit import UnitOfWork
from atelier.errors import InputUnavailable, RequestTooLarge, ValidationFailed
from atelier.media.probe import MediaInfo
from atelier.net import check_url
from atelier.storage.base import ArtifactStore

MAX_REDIRECTS = 3
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "audio/flac": ".flac",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/ogg": ".ogg",
}


def _invalid(field: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


def extension_for(content_type: str) -> str:
    return _EXTENSIONS.get(content_type.split(";")[0].strip(), ".bin")


def sniff(data: bytes, filename: str) -> MediaInfo:
    """What the bytes are, by their content alone: Pillow for images, PyAV for video and
    audio. The filename (and any content type the client sent) is never trusted."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            content_type = Image.MIME.get(image.format or "", "application/octet-stream")
            frames = int(getattr(image, "n_frames", 1) or 1)
            info = MediaInfo("image", content_type, image.width, image.height, frames > 1)
            image.verify()
        return info
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass
    return _sniff_av(data)


_CONTAINERS = {
    "mov": ("video/mp4", "audio/mp4"),
    "matroska": ("video/webm", "audio/webm"),
    "webm": ("video/webm", "audio/webm"),
    "avi": ("video/x-msvideo", "audio/x-wav"),
    "wav": ("video/x-wav", "audio/wav"),
    "flac": ("video/x-flac", "audio/flac"),
    "mp3": ("video/mpeg", "audio/mpeg"),
    "ogg": ("video/ogg", "audio/ogg"),
}


def _sniff_av(data: bytes) -> MediaInfo:
    import av  # only non-image inputs need it

    # No file suffix: FFmpeg must recognise the content, not the name.
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        try:
            with av.open(handle.name) as container:
                family = str(container.format.name).split(",")[0]
                video_type, audio_type = _CONTAINERS.get(family, ("video/mp4", "audio/mpeg"))
                if container.streams.video:
                    stream = container.streams.video[0]
                    width, height = stream.codec_context.width, stream.codec_context.height
                    if width and height:
                        return MediaInfo("video", video_type, width, height, animated=True)
                if container.streams.audio:
                    return MediaInfo("audio", audio_type)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError):
            pass
    return MediaInfo("other", "application/octet-stream")


def decode_base64(text: str, *, field: str) -> bytes:
    if text[:5].lower() == "data:":
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header.lower():
            raise _invalid(field, "a data: URI must be base64-encoded (data:<type>;base64,...)")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(field, "not an artifact id, a URL, a data: URI or valid base64") from exc


async def fetch_url(
    url: str, *, field: str, allowlist: Iterable[str], max_bytes: int, timeout: float
) -> tuple[bytes, str]:
    """GET a public URL (following at most 3 redirects, each checked); (bytes, filename)."""
    allow = list(allowlist)
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                addresses = await check_url(url, field=field, allowlist=allow)
                status, location, data = await _get_pinned(url, addresses[0], max_bytes, field)
                if status in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    continue
                if status != 200:
                    raise InputUnavailable(f"{field}: the URL answered {status}", field=field)
                return data, Path(urlsplit(url).path).name or "input"
    except TimeoutError as exc:
        raise InputUnavailable(
            f"{field}: the URL did not answer in {timeout:g}s", field=field
        ) from exc
    raise InputUnavailable(f"{field}: too many redirects", field=field)


async def _get_pinned(
    url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, max_bytes: int, field: str
) -> tuple[int, str | None, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port
    shown = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{shown}:{port}" if port else shown
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "atelier"}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        async with (
            httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
            client.stream("GET", pinned, headers=headers, extensions=extensions) as response,
        ):
            if response.status_code != 200:
                return response.status_code, response.headers.get("location"), b""
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(field, max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(field, max_bytes)
                chunks.append(chunk)
            return 200, None, b"".join(chunks)
    except httpx.HTTPError as exc:
        raise InputUnavailable(
            f"{field}: the URL could not be fetched ({type(exc).__name__})", field=field
        ) from exc


def _too_large(field: str, max_bytes: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"{field}: the input is larger than {max_bytes} bytes",
        errors=[{"field": field, "reason": f"larger than {max_bytes} bytes"}],
    )


class MediaInputs:
    """Turns a parameter's value into an input artifact of a job (not yet saved)."""

    def __init__(
        self,
        store: ArtifactStore,
        *,
        allowlist: Iterable[str],
        max_bytes: int,
        timeout: float,
    ) -> None:
        self.store = store
        self.allowlist = list(allowlist)
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def from_bytes(
        self, data: bytes, filename: str, *, field: str, owner: str | None, job_id: str | None
    ) -> ArtifactRow:
        if len(data) > self.max_bytes:
            raise _too_large(field, self.max_bytes)
        if not data:
            raise _invalid(field, "the input is empty")
        media = await asyncio.to_thread(sniff, data, filename)
        if media.kind not in ("image", "video", "audio"):
            raise _invalid(field, "not an image, video or audio file")
        blob = await self.store.put_bytes(data)
        stem = Path(filename).stem[:100] or "input"
        return ArtifactRow(
            id=str(uuid.uuid4()),
            job_id=job_id,
            owner=owner,
            role="input",
            node_id=None,
            filename=stem + extension_for(media.content_type),
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

    async def resolve(
        self,
        units: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
        form: dict[str, str],
        *,
        kind: str,
        field: str,
        owner: str | None,
        visible_owner: str | None,
        job_id: str,
    ) -> ArtifactRow:
        """{"artifact"|"url"|"base64": value} -> a new input artifact row of ``job_id``
        (not yet saved). No transaction stays open while a URL is fetched."""
        if "artifact" in form:
            async with units() as unit:
                row = await self.reuse(
                    unit, form["artifact"], field=field, visible_owner=visible_owner
                )
            row = copy_for_job(row, job_id, owner)
        elif "url" in form and form["url"][:5].lower() == "s3://":
            data, name = await self.store.fetch_input(
                form["url"], field=field, max_bytes=self.max_bytes
            )
            row = await self.from_bytes(data, name, field=field, owner=owner, job_id=job_id)
        elif "url" in form:
            data, name = await fetch_url(
                form["url"],
                field=field,
                allowlist=self.allowlist,
                max_bytes=self.max_bytes,
                timeout=self.timeout,
            )
            row = await self.from_bytes(data, name, field=field, owner=owner, job_id=job_id)
        else:
            data = decode_base64(form["base64"], field=field)
            row = await self.from_bytes(data, "input", field=field, owner=owner, job_id=job_id)
        if row.kind != kind:
            raise _invalid(field, f"expects an {kind}, but this input is {row.content_type}")
        return row

    async def reuse(
        self, unit: UnitOfWork, artifact_id: str, *, field: str, visible_owner: str | None
    ) -> ArtifactRow:
        row = await unit.artifacts.get(artifact_id)
        if row is None or (visible_owner is not None and row.owner != visible_owner):
            raise _invalid(field, f"no artifact {artifact_id!r}")
        if not await self.store.exists(row.storage_key):
            raise _invalid(field, f"the file of artifact {artifact_id!r} is gone")
        return row


def copy_for_job(row: ArtifactRow, job_id: str, owner: str | None) -> ArtifactRow:
    """A job's own input row for an existing file: deleting the job that made it (or the
    upload) does not take the file away from this one (files are reference-counted)."""
    return ArtifactRow(
        id=str(uuid.uuid4()),
        job_id=job_id,
        owner=owner,
        role="input",
        node_id=None,
        filename=row.filename,
        kind=row.kind,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        width=row.width,
        height=row.height,
        animated=row.animated,
        text=None,
        storage_key=row.storage_key,
        created_at=utcnow(),
    )
