"""Sniff and measure media files with Pillow (images) and PyAV (video, audio)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("video/webm", ".webm")
mimetypes.add_type("audio/flac", ".flac")


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # image, video, audio, text, other
    content_type: str
    width: int | None = None
    height: int | None = None
    animated: bool = False


def kind_of(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    if major in ("image", "video", "audio", "text"):
        return major
    return "other"


def guess_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def probe(path: Path, filename: str) -> MediaInfo:
    """Read the file's header: the content type is sniffed, the filename is only a hint."""
    try:
        with Image.open(path) as image:
            content_type = Image.MIME.get(image.format or "", guess_type(filename))
            frames = int(getattr(image, "n_frames", 1) or 1)
            return MediaInfo(
                kind="image",
                content_type=content_type,
                width=image.width,
                height=image.height,
                animated=frames > 1,
            )
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    guessed = guess_type(filename)
    if kind_of(guessed) in ("video", "audio"):
        return _probe_av(path, guessed)
    return MediaInfo(kind=kind_of(guessed), content_type=guessed)


def _probe_av(path: Path, guessed: str) -> MediaInfo:
    import av  # imported lazily: only outputs that are not images need it

    try:
        with av.open(str(path)) as container:
            if container.streams.video:
                stream = container.streams.video[0]
                return MediaInfo(
                    kind="video",
                    content_type=guessed if guessed.startswith("video/") else "video/mp4",
                    width=stream.codec_context.width,
                    height=stream.codec_context.height,
                    animated=True,
                )
            if container.streams.audio:
                return MediaInfo(kind="audio", content_type=guessed)
    except (av.error.FFmpegError, OSError):
        pass
    return MediaInfo(kind="other", content_type="application/octet-stream")
