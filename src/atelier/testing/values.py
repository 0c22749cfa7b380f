"""Values flowing between fake nodes.

IMAGE is a batch of PIL RGB images and MASK a batch of PIL "L" images (255 = masked), so
everything a graph produces can really be saved and served. Model-side values are small
descriptive records: enough to make results deterministic, nothing to compute with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

ImageBatch = list[Image.Image]
MaskBatch = list[Image.Image]


@dataclass(frozen=True)
class ModelRef:
    """MODEL / CLIP / VAE / UPSCALE_MODEL handle: which file it came from and what patched it."""

    kind: str
    name: str
    patches: tuple[str, ...] = ()

    def __str__(self) -> str:
        patched = f" +{'+'.join(self.patches)}" if self.patches else ""
        return f"<{self.kind} {self.name}{patched}>"


@dataclass(frozen=True, eq=False)
class Guide:
    """The pictures a real model would follow, carried from conditioning to the decode.

    `pixels` are what an encoded latent holds (img2img keeps `pixel_strength` of them),
    `references` the images of a reference edit (a visible trace of `reference_strength`),
    `start`/`end` the frames a video must begin and end on (see testing/motion.py).
    """

    pixels: tuple[Image.Image, ...] = ()
    pixel_strength: float = 0.0
    references: tuple[Image.Image, ...] = ()
    reference_strength: float = 0.0
    start: Image.Image | None = None
    end: Image.Image | None = None


@dataclass(frozen=True)
class Conditioning:
    text: str
    clip: str
    # Images the conditioning carries (reference edits, video start/end frames); not part
    # of equality: two encodings of one text compare equal, as the tensors would not.
    guide: Guide | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"<CONDITIONING {self.text!r}>"


@dataclass(frozen=True)
class Latent:
    """A latent batch; `width`/`height` are in pixels (multiples of 8, as VAE-decoded).

    A video latent decodes to `length` frames per batch entry.
    """

    width: int
    height: int
    batch: int
    content: str = "empty"
    length: int = 1
    guide: Guide | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        frames = f"x{self.length}" if self.length != 1 else ""
        return f"<LATENT {self.batch}{frames}x{self.width}x{self.height}>"


@dataclass(frozen=True)
class AudioClip:
    sample_rate: int
    channels: int
    samples: int
    # Interleaved float32 PCM; None means silence (all the fake's sources are silent).
    pcm: bytes | None = None

    def __str__(self) -> str:
        return f"<AUDIO {self.channels}ch {self.sample_rate}Hz {self.samples} samples>"


@dataclass
class VideoClip:
    frames: ImageBatch
    fps: float
    audio: AudioClip | None = None

    def __str__(self) -> str:
        size = f"{self.frames[0].width}x{self.frames[0].height}" if self.frames else "empty"
        return f"<VIDEO {len(self.frames)} frames {size} @{self.fps}fps>"


@dataclass(frozen=True)
class Token:
    """Opaque output of a node the fake only simulates."""

    type: str
    origin: str = ""

    def __str__(self) -> str:
        return f"<{self.type} from {self.origin}>"


def is_image_batch(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], Image.Image)


def format_value(value: Any) -> Any:
    """`execution.format_value`: primitives as-is, anything else as its string form."""
    if value is None or isinstance(value, int | float | bool | str):
        return value
    if is_image_batch(value):
        first = value[0]
        return f"<IMAGE batch={len(value)} {first.width}x{first.height} {first.mode}>"
    return str(value)


def stable_digest(*parts: object) -> bytes:
    """A digest that is the same in every process (unlike hash())."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\x00")
    return h.digest()


def pattern_image(width: int, height: int, *seed: object) -> Image.Image:
    """A smooth, deterministic colour field that differs visibly from seed to seed."""
    digest = stable_digest(*seed)
    pixels = (digest + hashlib.sha256(digest).digest())[:48]
    small = Image.frombytes("RGB", (4, 4), pixels)
    return small.resize((max(1, width), max(1, height)), Image.Resampling.BICUBIC)
