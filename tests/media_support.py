"""Real little videos and images for the media tests, made with PyAV and Pillow."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw


def box_frame(
    x: int, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (240, 40, 40)
) -> Image.Image:
    """A dark background with a bright square whose left edge is at x."""
    image = Image.new("RGB", size, (20, 30, 60))
    ImageDraw.Draw(image).rectangle((x, 12, x + 15, 27), fill=color)
    return image


def write_video(
    path: Path, frames: Sequence[Image.Image], fps: int, codec: str = "libx264"
) -> Path:
    width, height = frames[0].size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def moving_box_segments(tmp: Path, count: int, frames: int, step: int = 2) -> list[Path]:
    """`count` segments of `frames` frames; segment i ends on the frame segment i+1 starts on."""
    paths = []
    for number in range(count):
        start = number * (frames - 1) * step
        images = [box_frame(start + i * step, size=(96, 48)) for i in range(frames)]
        paths.append(write_video(tmp / f"segment_{number}.mp4", images, fps=16))
    return paths


def character(seed: int, size: tuple[int, int] = (128, 128)) -> Image.Image:
    """A made-up character sheet: a background and a few coloured shapes from the seed."""
    import random

    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y, w = rng.randrange(size[0]), rng.randrange(size[1]), rng.randrange(15, 60)
        draw.ellipse((x, y, x + w, y + w * 1.3), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image
