"""media/video.py on real files: probe, read, join at shared seams, posters, thumbnails."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from atelier.errors import MediaUnreadable
from atelier.media import video
from tests.media_support import box_frame, moving_box_segments, write_video


def change(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames, 0..255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def test_probe_reports_codec_size_frames_fps_and_duration(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", [box_frame(i) for i in range(10)], fps=8)
    info = video.probe_video(path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.frames) == (64, 48, 10)
    assert info.fps == 8
    assert info.duration == pytest.approx(10 / 8, abs=1 / 8)


def test_read_frames_by_index_in_one_pass(tmp_path: Path) -> None:
    frames = [box_frame(4 * i) for i in range(8)]
    path = write_video(tmp_path / "v.mp4", frames, fps=8)
    first, fifth, last = video.read_frames(path, [0, 4, -1])
    assert change(first, frames[0]) < 6 and change(fifth, frames[4]) < 6
    assert change(last, frames[7]) < 6
    assert len(video.read_frames(path)) == 8
    with pytest.raises(MediaUnreadable, match="no frame 20"):
        video.read_frames(path, [20])


def test_join_writes_each_shared_seam_frame_once(tmp_path: Path) -> None:
    segments = moving_box_segments(tmp_path, count=3, frames=9)
    out = tmp_path / "joined" / "long.mp4"
    info = video.join_segments(segments, out, fps=16, crf=18)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 96, 48)
    assert info.frames == 9 + 8 + 8
    assert info.fps == 16
    assert info.duration == pytest.approx(25 / 16, abs=1 / 16)
    frames = video.read_frames(out)
    steps = [change(a, b) for a, b in itertools.pairwise(frames)]
    # The box moves 2 px every frame, across the seams (after frames 8 and 16) as well:
    # no seam step is a freeze (a doubled frame) or a jump.
    inside = [s for i, s in enumerate(steps) if i not in (7, 8, 15, 16)]
    for seam in (7, 8, 15, 16):
        assert min(inside) * 0.5 <= steps[seam] <= max(inside) * 1.5, (seam, steps)
    assert change(frames[8], box_frame(16, size=(96, 48))) < 6


def test_join_without_dropping_keeps_the_doubled_seam_frame(tmp_path: Path) -> None:
    segments = moving_box_segments(tmp_path, count=2, frames=5)
    out = tmp_path / "twice.mp4"
    info = video.join_segments(segments, out, fps=10, drop_shared_first_frame=False)
    assert info.frames == 10
    frames = video.read_frames(out, [4, 5])
    assert change(frames[0], frames[1]) < 2  # the same keyframe twice: a freeze


def test_join_scales_segments_to_the_first_size_and_retimes(tmp_path: Path) -> None:
    small = write_video(tmp_path / "a.mp4", [box_frame(i, (64, 48)) for i in range(4)], fps=8)
    big = write_video(tmp_path / "b.mp4", [box_frame(i, (128, 96)) for i in range(6)], fps=24)
    info = video.join_segments([small, big], tmp_path / "mixed.mp4", fps=12)
    assert (info.width, info.height, info.frames, info.fps) == (64, 48, 9, 12)


def test_join_refuses_nothing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        video.join_segments([], tmp_path / "x.mp4", fps=16)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 10)
    with pytest.raises(MediaUnreadable) as caught:
        video.join_segments([junk], tmp_path / "x.mp4", fps=16)
    assert caught.value.problem()["type"].endswith("/media-unreadable")
    with pytest.raises(MediaUnreadable):
        video.probe_video(junk)


def test_poster_frame_and_thumbnail_of_a_video_and_an_image(tmp_path: Path) -> None:
    frames = [box_frame(0, (640, 480), (0, 200, 0))] + [box_frame(i, (640, 480)) for i in range(5)]
    clip = write_video(tmp_path / "v.mp4", frames, fps=8)
    poster = video.poster_frame(clip)
    assert poster.size == (640, 480) and change(poster, frames[0]) < 6
    thumb = Image.open(io.BytesIO(video.thumbnail(clip)))
    assert thumb.format == "WEBP" and thumb.size == (320, 240)
    still = tmp_path / "tall.png"
    Image.new("RGB", (100, 400), (10, 20, 30)).save(still)
    assert video.poster_frame(still).getpixel((5, 5)) == (10, 20, 30)
    png = Image.open(io.BytesIO(video.thumbnail(still, max_side=64, image_format="PNG")))
    assert png.format == "PNG" and png.size == (16, 64)
    from_image = Image.open(io.BytesIO(video.thumbnail(poster, max_side=32)))
    assert from_image.size == (32, 24)


@pytest.mark.parametrize("preset", ["medium", "veryfast"])
def test_join_of_segments_longer_than_the_encoders_look_ahead(tmp_path: Path, preset: str) -> None:
    # Past libx264's look-ahead, frames timed in the wrong base lose their timestamps.
    frames = [box_frame(i % 48, (64, 32)) for i in range(70)]
    long = write_video(tmp_path / "long.mp4", frames, fps=16)
    info = video.join_segments([long, long], tmp_path / "out.mp4", fps=16, preset=preset)
    assert info.frames == 139 and info.duration == pytest.approx(139 / 16, abs=1 / 16)
