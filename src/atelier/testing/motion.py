"""How the fake turns conditioning into pictures: stills that keep a trace of their
references, and videos that follow their start and end frames.

No model runs here. The rules are chosen so that what the studio checks on real output
can be checked on the fake's too:

- an encoded latent (img2img) keeps `sqrt(1 - denoise)` of its pixels: all at 0, none at
  a full denoise, as a real sampler does;
- a reference edit (Qwen image edit, Kontext's ReferenceLatent) blends its first
  reference, fitted to the output size, at REFERENCE_STRENGTH over the seed's pattern, so
  a consistency score against the reference is high and a reroll still differs;
- a first-last-frame video crossfades from its start to its end frame (smoothstep, so it
  leaves and arrives gently) while a soft disc crosses the frame, fading in and out with
  sin(pi t): frame 0 is the start image, the last frame the end image, and consecutive
  frames differ smoothly;
- an image-to-video clip slowly zooms and pans its start image (frame 0 is the image)
  with the same moving disc fading in.
"""

from __future__ import annotations

import functools
import math

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from atelier.testing.values import Conditioning, Guide, ImageBatch, Latent, pattern_image
from atelier.testing.values import stable_digest as digest

REFERENCE_STRENGTH = 0.85  # how much of a reference image a reference edit keeps
PATTERN_IN_MOTION = 0.15  # the seed's pattern, at its strongest, over the moving picture
ZOOM = 0.06  # image to video: how far the start image is zoomed by the last frame
PAN = 0.03  # ... and panned (fraction of the width)
DISC_ALPHA = 0.7  # the moving disc's opacity at its strongest


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """The image cropped to the aspect and scaled to the size (centre kept)."""
    image = image.convert("RGB")
    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), Image.Resampling.BICUBIC)


def _composite(references: tuple[Image.Image, ...], width: int, height: int) -> Image.Image:
    """The first reference dominates; the others are blended in lightly."""
    out = fit(references[0], width, height)
    for extra in references[1:]:
        out = Image.blend(out, fit(extra, width, height), 0.2)
    return out


def smoothstep(t: float) -> float:
    return t * t * (3 - 2 * t)


# -- guides: what conditioning and latents carry -------------------------------------


def conditioning_guide(value: object) -> Guide | None:
    return value.guide if isinstance(value, Conditioning) else None


def with_references(cond: object, images: list[Image.Image]) -> object:
    """The conditioning with these reference images added (others keep what they had)."""
    if not isinstance(cond, Conditioning) or not images:
        return cond
    old = cond.guide or Guide()
    guide = Guide(
        references=(*old.references, *images),
        reference_strength=REFERENCE_STRENGTH,
        start=old.start,
        end=old.end,
    )
    return Conditioning(cond.text, cond.clip, guide)


def with_frames(cond: object, start: Image.Image | None, end: Image.Image | None) -> object:
    """Video conditioning: the clip starts on `start` and ends on `end` (either optional)."""
    if not isinstance(cond, Conditioning):
        return cond
    old = cond.guide or Guide()
    guide = Guide(
        references=old.references,
        reference_strength=old.reference_strength,
        start=start,
        end=end,
    )
    return Conditioning(cond.text, cond.clip, guide)


def sampled_guide(latent: Latent, positive: object, denoise: float) -> Guide | None:
    """What a sampler's output latent still follows: what is left of the input latent's
    pixels after `denoise`, plus the positive conditioning's references and frames."""
    kept = latent.guide
    cond = conditioning_guide(positive)
    pixels: tuple[Image.Image, ...] = ()
    strength = 0.0
    if kept is not None and kept.pixels:
        strength = kept.pixel_strength * math.sqrt(max(0.0, 1.0 - denoise))
        pixels = kept.pixels if strength > 0 else ()
    if not pixels and cond is None:
        return None
    return Guide(
        pixels=pixels,
        pixel_strength=strength,
        references=cond.references if cond else (),
        reference_strength=cond.reference_strength if cond else 0.0,
        start=cond.start if cond else None,
        end=cond.end if cond else None,
    )


# -- rendering ------------------------------------------------------------------------


def render_still(base: Image.Image, guide: Guide | None, index: int) -> Image.Image:
    if guide is None:
        return base
    width, height = base.size
    out = base
    if guide.pixels and guide.pixel_strength > 0:
        source = fit(guide.pixels[index % len(guide.pixels)], width, height)
        out = Image.blend(out, source, min(1.0, guide.pixel_strength))
    if guide.references and guide.reference_strength > 0:
        trace = _composite(guide.references, width, height)
        out = Image.blend(out, trace, min(1.0, guide.reference_strength))
    return out


@functools.lru_cache(maxsize=8)
def _disc(radius: int) -> Image.Image:
    """A soft-edged disc as an "L" mask, 255 in the middle."""
    size = radius * 4
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((radius, radius, 3 * radius, 3 * radius), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(radius / 2))


def _with_disc(frame: Image.Image, t: float, alpha: float, seed: bytes) -> Image.Image:
    if alpha <= 0:
        return frame
    width, height = frame.size
    radius = max(2, min(width, height) // 8)
    x = width * (0.2 + 0.6 * t)
    y = height * (0.5 + 0.2 * math.sin(2 * math.pi * t + seed[3] / 40))
    sprite = _disc(radius)
    mask = sprite.point(lambda v: round(v * alpha))
    color = Image.new("RGB", sprite.size, (seed[0], seed[1], seed[2]))
    out = frame.copy()
    out.paste(color, (round(x) - 2 * radius, round(y) - 2 * radius), mask)
    return out


def _zoomed(image: Image.Image, t: float, seed: bytes) -> Image.Image:
    """The image zoomed by ZOOM*t and panned by PAN*t, sub-pixel smooth."""
    width, height = image.size
    scale = 1 + ZOOM * t
    box_w, box_h = width / scale, height / scale
    direction = 1 if seed[4] % 2 else -1
    cx = width / 2 + direction * PAN * width * t
    cx = min(max(cx, box_w / 2), width - box_w / 2)
    cy = height / 2
    box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
    return image.resize((width, height), Image.Resampling.BICUBIC, box=box)


def render_frame(
    base: Image.Image, guide: Guide | None, index: int, total: int, seed: bytes
) -> Image.Image:
    """Frame `index` of `total` of a clip whose seed's own picture is `base`."""
    width, height = base.size
    t = index / (total - 1) if total > 1 else 0.0
    start = fit(guide.start, width, height) if guide and guide.start else None
    end = fit(guide.end, width, height) if guide and guide.end else None
    swell = math.sin(math.pi * t)
    if start is not None and end is not None:
        frame = Image.blend(start, end, smoothstep(t))
        frame = Image.blend(frame, base, PATTERN_IN_MOTION * swell)
        return _with_disc(frame, t, DISC_ALPHA * swell, seed)
    if start is not None or end is not None:
        # Image to video; with only an end frame the same motion runs backwards.
        anchor, u = (start, t) if start is not None else (end, 1 - t)
        assert anchor is not None
        frame = _zoomed(anchor, u, seed)
        frame = Image.blend(frame, base, PATTERN_IN_MOTION * u)
        return _with_disc(frame, u, DISC_ALPHA * math.sin(math.pi * u / 2), seed)
    frame = _zoomed(render_still(base, guide, 0), t, seed)
    return _with_disc(frame, t, DISC_ALPHA * swell, seed)


def is_video(latent: Latent) -> bool:
    guide = latent.guide
    return latent.length > 1 or (guide is not None and (guide.start or guide.end) is not None)


def decode(latent: Latent, vae: str) -> ImageBatch:
    """VAEDecode: batch x length pictures that follow the latent's guide."""
    count = latent.batch * latent.length
    images: ImageBatch = []
    video = is_video(latent)
    # A video latent of length 1 per entry (SVD) runs its time over the batch.
    per_clip = latent.length if latent.length > 1 else latent.batch
    for flat in range(count):
        clip, index = divmod(flat, per_clip) if video else (flat, 0)
        base = pattern_image(latent.width, latent.height, latent.content, vae, clip)
        if video:
            seed = digest(latent.content, vae, clip, "motion")
            images.append(render_frame(base, latent.guide, index, per_clip, seed))
        else:
            images.append(render_still(base, latent.guide, flat))
    return images
