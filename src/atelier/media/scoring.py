"""Quality scorers for the studio's gates. Each says what it measures and nothing more.

- `technical`: the file is what was asked for (size; for videos frame count, fps and
  duration) and its pictures are neither blank (no contrast) nor flat noise (no spatial
  structure: neighbouring pixels uncorrelated). Pass/fail per check; value = the share
  of checks passed, and by default every check must pass.
- `consistency`: how alike a candidate and reference images look, by the structural
  similarity index (SSIM, scikit-image) of greyscale copies COMPARE_WIDTH pixels wide:
  local means, contrasts and correlations of light and dark, 1 for the same picture. It
  keeps composition and shapes and ignores colour, small shifts of tone and compression.
  It does not recognise a character; it tells whether the output kept the reference's
  layout. (A perceptual hash was tried first: its 64 bits flip too easily near the
  threshold.) A reference of another aspect is centre-cropped to the candidate's first;
  a reference with no structure (a flat colour) is compared by its mean colour instead.
- `seam_continuity`: at each seam between video segments, the change from the last frame
  before it to the first frame after it, against the largest change between neighbouring
  frames inside the segments. A seam no bigger than that is continuous.

Changes between frames are mean absolute differences of 64-pixel-wide copies, 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError
from skimage.metrics import structural_similarity

from atelier.errors import MediaUnreadable
from atelier.media import video

BLANK_STD = 0.02  # luminance standard deviation (0..1) below which a picture is blank
NOISE_CORRELATION = 0.3  # neighbour correlation below which a picture is flat noise
COMPARE_WIDTH = 64  # frames and references are compared at this width
SAMPLE_FRAMES = 8  # frames of a video that the picture checks look at
# A seam scores 1 while its step is no bigger than the largest step inside, falling to 0
# at twice that; passing at 0.9 leaves 10 % for compression noise on steady motion.
SEAM_THRESHOLD = 0.9


@dataclass(frozen=True)
class Score:
    name: str
    value: float  # 0..1, higher is better
    passed: bool
    threshold: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(name: str, value: float, threshold: float, details: dict[str, Any]) -> Score:
    value = round(min(1.0, max(0.0, float(value))), 4)
    return Score(name, value, bool(value >= threshold), threshold, details)


# -- pictures --------------------------------------------------------------------------


def _luma(image: Image.Image, max_side: int = 256) -> np.ndarray[Any, np.dtype[np.float64]]:
    grey = image.convert("L")
    if max(grey.size) > max_side:
        grey = grey.copy()
        grey.thumbnail((max_side, max_side), Image.Resampling.NEAREST)
    return np.asarray(grey, dtype=np.float64) / 255.0


def contrast(image: Image.Image) -> float:
    """Standard deviation of the luminance, 0..0.5: 0 for a flat picture."""
    return float(_luma(image).std())


def neighbour_correlation(image: Image.Image) -> float:
    """Correlation of each pixel with its right and lower neighbours (-1..1).

    Pictures of anything are close to 1 (neighbours look alike); independent noise is
    close to 0. Sampled with nearest-neighbour so that noise is not averaged away.
    """
    luma = _luma(image)
    pairs = []
    if luma.shape[1] > 1:
        pairs.append((luma[:, :-1].ravel(), luma[:, 1:].ravel()))
    if luma.shape[0] > 1:
        pairs.append((luma[:-1, :].ravel(), luma[1:, :].ravel()))
    values = []
    for a, b in pairs:
        if a.std() > 0 and b.std() > 0:
            values.append(float(np.corrcoef(a, b)[0, 1]))
    return sum(values) / len(values) if values else 1.0


def frame_change(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two pictures at COMPARE_WIDTH, 0 (same) .. 1."""
    return float(np.abs(_small(a) - _small(b)).mean())


def _small(image: Image.Image) -> np.ndarray[Any, np.dtype[np.float64]]:
    height = max(1, round(image.height * COMPARE_WIDTH / image.width))
    small = image.convert("RGB").resize((COMPARE_WIDTH, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _picture_checks(frames: Sequence[Image.Image]) -> tuple[dict[str, bool], dict[str, Any]]:
    contrasts = [contrast(f) for f in frames]
    correlations = [neighbour_correlation(f) for f in frames]
    checks = {
        "not_blank": min(contrasts) >= BLANK_STD,
        "not_noise": min(correlations) >= NOISE_CORRELATION,
    }
    details = {
        "contrast": round(min(contrasts), 4),
        "neighbour_correlation": round(min(correlations), 4),
        "frames_checked": len(frames),
    }
    return checks, details


# -- technical -------------------------------------------------------------------------


def _still_frames(path: Path) -> list[Image.Image] | None:
    try:
        with Image.open(path) as image:
            return [f.convert("RGB") for f in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _evenly(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def technical(
    source: Path | Image.Image,
    *,
    width: int | None = None,
    height: int | None = None,
    frames: int | None = None,
    fps: float | None = None,
    duration: float | None = None,
    frame_slack: int = 1,
    threshold: float = 1.0,
) -> Score:
    """Is the output what was asked for, and a picture at all? (see the module doc).

    `frames` and `duration` may be off by `frame_slack` frames; `fps` by 0.01.
    An image or animated image is checked like a video with its own frame count.
    """
    details: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    info: video.VideoInfo | None = None
    if isinstance(source, Image.Image):
        stills: list[Image.Image] | None = [source.convert("RGB")]
    else:
        stills = _still_frames(source)
    if stills is not None:
        size = stills[0].size
        count, rate = len(stills), None
        sample = [stills[i] for i in _evenly(len(stills), SAMPLE_FRAMES)]
    else:
        assert isinstance(source, Path)
        info = video.probe_video(source)
        size, count, rate = (info.width, info.height), info.frames, info.fps
        details.update(codec=info.codec, pix_fmt=info.pix_fmt, duration=round(info.duration, 4))
        sample = video.read_frames(source, _evenly(count, SAMPLE_FRAMES))
    details.update(width=size[0], height=size[1], frames=count)
    if rate is not None:
        details["fps"] = round(rate, 4)
    if width is not None:
        checks["width"] = size[0] == width
    if height is not None:
        checks["height"] = size[1] == height
    if frames is not None:
        checks["frames"] = abs(count - frames) <= frame_slack
    if fps is not None:
        checks["fps"] = rate is not None and abs(rate - fps) <= 0.01
    if duration is not None:
        actual = info.duration if info is not None else None
        slack = frame_slack / (rate or fps or 1)
        # 10 ms more: containers round durations to their time base.
        checks["duration"] = actual is not None and abs(actual - duration) <= slack + 0.01
    picture_checks, picture_details = _picture_checks(sample)
    checks.update(picture_checks)
    details.update(picture_details)
    details["checks"] = checks
    details["failed"] = [name for name, ok in checks.items() if not ok]
    value = sum(checks.values()) / len(checks)
    return _score("technical", value, threshold, details)


# -- consistency -----------------------------------------------------------------------


def _pictures(source: Path | Image.Image) -> list[Image.Image]:
    """An image, or the first, middle and last frames of a video or animation."""
    if isinstance(source, Image.Image):
        return [source.convert("RGB")]
    stills = _still_frames(source)
    if stills is not None:
        return [stills[i] for i in sorted({0, len(stills) // 2, len(stills) - 1})]
    count = video.probe_video(source).frames
    return video.read_frames(source, sorted({0, count // 2, max(0, count - 1)}))


def _same_aspect(reference: Image.Image, candidate: Image.Image) -> Image.Image:
    """The reference centre-cropped to the candidate's aspect (as ComfyUI's "center" crop
    does when a node scales a reference to its output size)."""
    ref_aspect = reference.width / reference.height
    aspect = candidate.width / candidate.height
    if abs(ref_aspect - aspect) < 0.01:
        return reference
    if ref_aspect > aspect:
        width = round(reference.height * aspect)
        left = (reference.width - width) // 2
        return reference.crop((left, 0, left + width, reference.height))
    height = round(reference.width / aspect)
    top = (reference.height - height) // 2
    return reference.crop((0, top, reference.width, top + height))


def _similarity(candidate: Image.Image, reference: Image.Image) -> tuple[float, str]:
    reference = _same_aspect(reference, candidate)
    if contrast(reference) < BLANK_STD:
        # A flat reference has no structure to hash: compare the mean colours.
        a = np.asarray(candidate.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
        b = np.asarray(reference.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
        distance = float(np.linalg.norm(a - b)) / (255 * math.sqrt(3))
        return 1 - 2 * distance, "mean_colour"
    size = (COMPARE_WIDTH, max(7, round(candidate.height * COMPARE_WIDTH / candidate.width)))
    a, b = (
        np.asarray(image.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float64)
        for image in (candidate, reference)
    )
    value = structural_similarity(  # type: ignore[no-untyped-call]
        a / 255, b / 255, data_range=1.0, gaussian_weights=True, sigma=1.5
    )
    return float(value), "ssim"


def consistency(
    candidate: Path | Image.Image,
    references: Sequence[Path | Image.Image],
    *,
    threshold: float = 0.8,
) -> Score:
    """How well the candidate keeps its references' look (see the module doc).

    Each sampled picture of the candidate takes its best-matching reference; the value
    is the mean over the candidate's pictures.
    """
    if not references:
        raise ValueError("consistency needs at least one reference image")
    pictures = _pictures(candidate)
    refs = [r.convert("RGB") if isinstance(r, Image.Image) else _pictures(r)[0] for r in references]
    best: list[float] = []
    methods: set[str] = set()
    per_reference = [0.0] * len(refs)
    for picture in pictures:
        scores = []
        for index, reference in enumerate(refs):
            value, method = _similarity(picture, reference)
            methods.add(method)
            scores.append(value)
            per_reference[index] += value / len(pictures)
        best.append(max(scores))
    details = {
        "measure": "+".join(sorted(methods)),
        "pictures_compared": len(pictures),
        "per_reference": [round(max(0.0, float(v)), 4) for v in per_reference],
    }
    return _score("consistency", sum(best) / len(best), threshold, details)


# -- seams -----------------------------------------------------------------------------


def _changes(frames: Iterable[Image.Image]) -> Iterator[float]:
    previous = None
    for frame in frames:
        small = _small(frame)
        if previous is not None:
            yield float(np.abs(small - previous).mean())
        previous = small


def _seam_score(inside: list[float], seams: list[dict[str, Any]], threshold: float) -> Score:
    largest = max(inside, default=0.0)
    worst = 1.0
    for seam in seams:
        across = seam["change"]
        ratio = across / largest if largest > 0 else (0.0 if across == 0 else math.inf)
        seam["ratio"] = round(ratio, 4) if math.isfinite(ratio) else None
        # 1 while the seam is no bigger than the largest step inside; 0 at twice it.
        worst = min(worst, max(0.0, min(1.0, 2.0 - ratio)))
        seam["change"] = round(across, 5)
    details = {"largest_change_inside": round(largest, 5), "seams": seams}
    return _score("seam_continuity", worst, threshold, details)


def seam_continuity(
    segments: Sequence[Path],
    *,
    drop_shared_first_frame: bool = True,
    threshold: float = SEAM_THRESHOLD,
) -> Score:
    """Continuity of the seams the join of these segments will have (see the module doc).

    With `drop_shared_first_frame` (as `video.join_segments` does) the step across a seam
    goes from a segment's last frame to the next segment's second frame; the details also
    give how far the shared frames themselves differ (`shared_frame_change`).
    """
    if len(segments) < 2:
        raise ValueError("seam continuity needs at least two segments")
    inside: list[float] = []
    seams: list[dict[str, Any]] = []
    previous_last: np.ndarray[Any, np.dtype[np.float64]] | None = None
    for number, path in enumerate(segments):
        head: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        last = None
        for frame in video.iter_frames(path):
            small = _small(frame)
            if last is not None:
                inside.append(float(np.abs(small - last).mean()))
            if len(head) < 2:
                head.append(small)
            last = small
        if not head:
            raise MediaUnreadable(str(path), "holds no frames")
        if previous_last is not None:
            after = head[1] if drop_shared_first_frame and len(head) > 1 else head[0]
            shared = float(np.abs(previous_last - head[0]).mean())
            seams.append(
                {
                    "after_segment": number - 1,
                    "change": float(np.abs(after - previous_last).mean()),
                    "shared_frame_change": round(shared, 5),
                }
            )
        previous_last = last
    return _seam_score(inside, seams, threshold)


def seam_continuity_joined(
    path: Path, seam_frames: Sequence[int], *, threshold: float = SEAM_THRESHOLD
) -> Score:
    """The same on a joined video: `seam_frames` are the indices of the first frame of
    every segment after the first; the step into each of them is the seam."""
    seam_set = set(seam_frames)
    inside: list[float] = []
    seams: list[dict[str, Any]] = []
    for index, change in enumerate(_changes(video.iter_frames(path)), start=1):
        if index in seam_set:
            seams.append({"frame": index, "change": change})
        else:
            inside.append(change)
    if len(seams) != len(seam_set):
        raise ValueError(f"the video has no frame {max(seam_set)}")
    return _seam_score(inside, seams, threshold)
