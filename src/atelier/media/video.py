"""Video on the Atelier side, with PyAV (no ffmpeg subprocess): probe, read frames, join
segments into one MP4, poster frames and thumbnails.

Everything streams frame by frame: a join of many long segments holds one decoded frame
and the encoder's small look-ahead in memory, never a whole clip.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType
from PIL import Image, ImageOps, UnidentifiedImageError

from atelier.errors import MediaUnreadable

H264 = "libx264"


@dataclass(frozen=True)
class VideoInfo:
    codec: str  # e.g. "h264"
    pix_fmt: str  # e.g. "yuv420p"
    width: int
    height: int
    frames: int
    fps: float
    duration: float  # seconds: frames / fps for constant-rate files


def _open(path: Path | str) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaUnreadable(str(path), f"cannot be opened as media ({exc})") from exc


def _video_stream(container: av.container.InputContainer, path: Path | str) -> av.VideoStream:
    if not container.streams.video:
        raise MediaUnreadable(str(path), "has no video stream")
    return container.streams.video[0]


def probe_video(path: Path | str) -> VideoInfo:
    """Codec, pixel format, size, frame count, frame rate and duration of a video file.

    The frame count is counted from the demuxed packets when the container does not say
    (WebM), so it is exact without decoding.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames = stream.frames
        if not frames:
            frames = sum(1 for packet in container.demux(stream) if packet.size)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = frames / fps if fps else 0.0
        pix_fmt = ctx.pix_fmt or (ctx.format.name if ctx.format else "")
        return VideoInfo(
            codec=ctx.name,
            pix_fmt=pix_fmt,
            width=ctx.width,
            height=ctx.height,
            frames=frames,
            fps=fps,
            duration=duration,
        )


def _decoded(path: Path | str) -> Iterator[av.VideoFrame]:
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def _rgb(frame: av.VideoFrame) -> Image.Image:
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    return image


def iter_frames(path: Path | str) -> Iterator[Image.Image]:
    """Every frame of the video as an RGB image, in order, one at a time."""
    for frame in _decoded(path):
        yield _rgb(frame)


def read_frames(path: Path | str, indices: Iterable[int] | None = None) -> list[Image.Image]:
    """The frames at these indices (0-based, negative counts from the end), or all.

    Frames are decoded in one pass; only the requested ones are kept.
    """
    if indices is None:
        return list(iter_frames(path))
    wanted = list(indices)
    if any(i < 0 for i in wanted):
        total = probe_video(path).frames
        wanted = [i + total if i < 0 else i for i in wanted]
    keep = set(wanted)
    found: dict[int, Image.Image] = {}
    last = max(keep, default=-1)
    for index, frame in enumerate(_decoded(path)):
        if index in keep:
            found[index] = _rgb(frame)
        if index >= last:
            break
    missing = sorted(keep - found.keys())
    if missing:
        raise MediaUnreadable(str(path), f"has no frame {missing[0]}")
    return [found[i] for i in wanted]


def join_segments(
    paths: Sequence[Path],
    out: Path,
    *,
    fps: int,
    crf: int = 20,
    drop_shared_first_frame: bool = True,
    preset: str = "medium",
) -> VideoInfo:
    """Concatenate video segments into one MP4 (H.264, yuv420p, `fps`, CRF `crf`).

    Neighbouring segments rendered between shared keyframes both contain the keyframe:
    with `drop_shared_first_frame` the first frame of every segment after the first is
    skipped, so each seam frame is written once. Every segment is scaled to the first
    one's size (rounded down to even, as yuv420p needs). Frames are re-timed to `fps`
    one by one; the segments' own frame rates are ignored.
    """
    if not paths:
        raise ValueError("join_segments needs at least one segment")
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    first = probe_video(paths[0])
    width, height = max(2, first.width // 2 * 2), max(2, first.height // 2 * 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(out), mode="w", format="mp4", options={"movflags": "+faststart"}) as dst:
        stream = dst.add_stream(H264, rate=fps, options={"crf": str(crf), "preset": preset})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Frames are timed in 1/fps; the muxer keeps its own (finer) time base. Forcing the
        # stream's time base to 1/fps as well makes libx264's reordered timestamps collide
        # past its look-ahead (PyAV 18: "pts 0" packets, EINVAL from the muxer).
        frame_time = Fraction(1, fps)
        for number, path in enumerate(paths):
            skip = 1 if drop_shared_first_frame and number > 0 else 0
            for index, frame in enumerate(_decoded(path)):
                if index < skip:
                    continue
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                scaled.pts = written
                scaled.time_base = frame_time
                # A decoded frame remembers its old type (I, P, B); the encoder would take
                # that as an order, and B-frames an encoder is not making break the mux.
                scaled.pict_type = PictureType.NONE
                dst.mux(stream.encode(scaled))
                written += 1
        if written == 0:
            raise MediaUnreadable(str(out), "the segments hold no frames")
        dst.mux(stream.encode(None))
    return probe_video(out)


def _first_image_frame(path: Path | str) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            image.seek(0)
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def poster_frame(path: Path | str) -> Image.Image:
    """The picture that stands for the file: an image's first frame, a video's first frame."""
    still = _first_image_frame(path)
    if still is not None:
        return still
    for frame in _decoded(path):
        return _rgb(frame)
    raise MediaUnreadable(str(path), "has no frames")


def thumbnail(
    source: Path | str | Image.Image, max_side: int = 320, image_format: str = "WEBP"
) -> bytes:
    """A small WebP (or PNG) of an image or of a video's poster frame, aspect kept."""
    if image_format not in ("WEBP", "PNG"):
        raise ValueError(f"thumbnails are WEBP or PNG, not {image_format}")
    image = source.convert("RGB") if isinstance(source, Image.Image) else poster_frame(source)
    image = image.copy()
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image_format == "WEBP":
        image.save(buffer, format="WEBP", quality=80, method=4)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
