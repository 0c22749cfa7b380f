"""Directories, output naming and file encoders of the fake ComfyUI.

Encoders return bytes instead of writing files: they run in a worker thread and the
caller writes the result from the event loop, so a crash() that cancels the prompt
between the two cannot leave a file behind.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from atelier.testing.values import AudioClip, ImageBatch, VideoClip

_ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}


@dataclass(frozen=True)
class Dirs:
    root: Path

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def temp(self) -> Path:
        return self.root / "temp"

    def by_type(self, kind: str | None) -> Path | None:
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind or "")

    def annotated(self, name: str) -> tuple[str, Path | None]:
        """`folder_paths.annotated_filepath`: a `x.png [output]` suffix picks the folder."""
        for suffix, kind in _ANNOTATIONS.items():
            if name.endswith(suffix):
                return name[: -(len(suffix) + 1)], self.by_type(kind)
        return name, None

    def annotated_path(self, name: str) -> str:
        name, base = self.annotated(name)
        return os.path.join(str(base or self.input), name)

    def exists_annotated(self, name: Any) -> bool:
        if not isinstance(name, str):
            # ComfyUI calls name.endswith(); a non-string crashes its validation the same way
            raise AttributeError(f"'{type(name).__name__}' object has no attribute 'endswith'")
        return os.path.exists(self.annotated_path(name))


def _compute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    for key, value in (
        ("%width%", str(width)),
        ("%height%", str(height)),
        ("%year%", str(now.tm_year)),
        ("%month%", str(now.tm_mon).zfill(2)),
        ("%day%", str(now.tm_mday).zfill(2)),
        ("%hour%", str(now.tm_hour).zfill(2)),
        ("%minute%", str(now.tm_min).zfill(2)),
        ("%second%", str(now.tm_sec).zfill(2)),
    ):
        prefix = prefix.replace(key, value)
    return prefix


@dataclass(frozen=True)
class SaveTarget:
    folder: Path
    filename: str
    counter: int
    subfolder: str


def save_target(prefix: str, output_dir: Path, width: int = 0, height: int = 0) -> SaveTarget:
    """`folder_paths.get_save_image_path`: the counter continues from files on disk."""
    if "%" in prefix:
        prefix = _compute_vars(prefix, width, height)
    subfolder = os.path.dirname(os.path.normpath(prefix))
    filename = os.path.basename(os.path.normpath(prefix))
    base = str(output_dir)
    folder = os.path.join(base, subfolder)
    if os.path.commonpath((base, os.path.abspath(folder))) != base:
        raise Exception(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(folder)}\n         output_dir: {base}"
        )
    prefix_len = len(os.path.basename(prefix))
    best = 0
    try:
        for name in os.listdir(folder):
            head = name[: prefix_len + 1]
            if os.path.normcase(head[:-1]) != os.path.normcase(filename) or head[-1:] != "_":
                continue
            try:
                digits = int(name[prefix_len + 1 :].split("_")[0])
            except ValueError:
                digits = 0
            best = max(best, digits)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
    return SaveTarget(Path(folder), filename, best + 1, subfolder)


def png_metadata(prompt: Any, extra_pnginfo: Any) -> PngInfo:
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if isinstance(extra_pnginfo, dict):
        for key, value in extra_pnginfo.items():
            info.add_text(str(key), json.dumps(value))
    return info


def encode_png(image: Image.Image, metadata: PngInfo | None, compress_level: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=metadata, compress_level=compress_level)
    return buf.getvalue()


def encode_animated_webp(
    frames: ImageBatch, fps: float, lossless: bool, quality: int, method: int, prompt: Any
) -> bytes:
    exif = frames[0].getexif()
    if prompt is not None:
        exif[0x0110] = f"prompt:{json.dumps(prompt)}"
    buf = io.BytesIO()
    frames[0].save(
        buf,
        format="WEBP",
        save_all=True,
        duration=int(1000.0 / fps),
        append_images=frames[1:],
        exif=exif,
        lossless=lossless,
        quality=quality,
        method=method,
    )
    return buf.getvalue()


def encode_animated_png(
    frames: ImageBatch, fps: float, compress_level: int, metadata: PngInfo | None
) -> bytes:
    buf = io.BytesIO()
    frames[0].save(
        buf,
        format="PNG",
        pnginfo=metadata,
        compress_level=compress_level,
        save_all=True,
        duration=int(1000.0 / fps),
        append_images=frames[1:],
    )
    return buf.getvalue()


def _video_codec() -> str:
    # h264 needs libx264 in the PyAV build; mpeg4 is always there.
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _audio_frames(audio: AudioClip, chunk: int = 16384) -> list[av.AudioFrame]:
    layout = "mono" if audio.channels == 1 else "stereo"
    frames: list[av.AudioFrame] = []
    bytes_per_sample = 4 * audio.channels
    for start in range(0, audio.samples, chunk):
        count = min(chunk, audio.samples - start)
        frame = av.AudioFrame(format="flt", layout=layout, samples=count)
        if audio.pcm is None:
            data = bytes(count * bytes_per_sample)
        else:
            data = audio.pcm[start * bytes_per_sample : (start + count) * bytes_per_sample]
        frame.planes[0].update(data)
        frame.sample_rate = audio.sample_rate
        frame.pts = start
        frames.append(frame)
    return frames


def encode_flac(audio: AudioClip, metadata: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac") as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        layout = "mono" if audio.channels == 1 else "stereo"
        stream = container.add_stream("flac", rate=audio.sample_rate, layout=layout)
        for frame in _audio_frames(audio):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def encode_mp4(video: VideoClip, metadata: dict[str, str]) -> bytes:
    width = video.frames[0].width // 2 * 2 or 2
    height = video.frames[0].height // 2 * 2 or 2
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        stream = container.add_stream(_video_codec(), rate=round(video.fps))
        assert isinstance(stream, av.VideoStream)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        audio_stream = None
        if video.audio is not None and "aac" in av.codecs_available:
            layout = "mono" if video.audio.channels == 1 else "stereo"
            audio_stream = container.add_stream("aac", rate=video.audio.sample_rate, layout=layout)
        for image in video.frames:
            if image.size != (width, height):
                image = image.crop((0, 0, width, height))
            frame = av.VideoFrame.from_image(image.convert("RGB"))  # type: ignore[no-untyped-call]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio_stream is not None and video.audio is not None:
            for audio_frame in _audio_frames(video.audio):
                container.mux(audio_stream.encode(audio_frame))
            container.mux(audio_stream.encode(None))
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
