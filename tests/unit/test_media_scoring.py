"""The quality scorers on real pictures and videos: blank, noise, wrong sizes, references
and seams."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from atelier.media import scoring, video
from tests.media_support import box_frame, character, moving_box_segments, write_video


def noise(size: tuple[int, int] = (96, 64)) -> Image.Image:
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def test_technical_passes_a_picture_of_the_asked_size() -> None:
    score = scoring.technical(character(1, (96, 64)), width=96, height=64)
    assert score.passed and score.value == 1.0 and score.threshold == 1.0
    assert score.details["failed"] == [] and score.details["neighbour_correlation"] > 0.8


def test_technical_fails_blank_noise_and_wrong_size(tmp_path: Path) -> None:
    blank = scoring.technical(Image.new("RGB", (96, 64), (128, 128, 128)))
    assert not blank.passed and blank.details["failed"] == ["not_blank"]
    noisy = scoring.technical(noise())
    assert not noisy.passed and noisy.details["failed"] == ["not_noise"]
    assert abs(noisy.details["neighbour_correlation"]) < 0.1
    path = tmp_path / "c.png"
    character(2, (96, 64)).save(path)
    small = scoring.technical(path, width=128, height=64)
    assert not small.passed and small.details["failed"] == ["width"]
    assert small.value == pytest.approx(3 / 4)


def test_technical_checks_a_video_frame_count_fps_and_duration(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", [box_frame(2 * i) for i in range(17)], fps=16)
    ok = scoring.technical(path, width=64, height=48, frames=17, fps=16, duration=17 / 16)
    assert ok.passed, ok.details
    assert ok.details["codec"] == "h264" and ok.details["frames_checked"] == 8
    slack = scoring.technical(path, frames=18, duration=18 / 16)
    assert slack.passed  # one frame of slack
    wrong = scoring.technical(path, frames=33, fps=24, duration=33 / 24)
    assert not wrong.passed and set(wrong.details["failed"]) == {"frames", "fps", "duration"}


def test_technical_catches_a_video_that_goes_blank(tmp_path: Path) -> None:
    frames = [box_frame(2 * i) for i in range(8)] + [Image.new("RGB", (64, 48))] * 8
    path = write_video(tmp_path / "v.mp4", frames, fps=8)
    score = scoring.technical(path, frames=16)
    assert not score.passed and score.details["failed"] == ["not_blank"]


def test_consistency_prefers_a_picture_made_from_the_reference(tmp_path: Path) -> None:
    reference = character(7)
    # What a reference edit does: the reference kept under a new smooth colour field.
    field = Image.linear_gradient("L").resize((128, 128)).convert("RGB")
    derived = Image.blend(field, reference, 0.7).resize((256, 256))
    unrelated = character(8)
    close = scoring.consistency(derived, [reference])
    far = scoring.consistency(unrelated, [reference])
    assert close.value > far.value + 0.25, (close, far)
    assert close.passed and not far.passed
    assert close.details["measure"] == "ssim"
    same = scoring.consistency(reference, [unrelated, reference])
    assert same.value == 1.0 and same.details["per_reference"][1] == 1.0
    path = tmp_path / "derived.png"
    derived.save(path)
    assert scoring.consistency(path, [reference]).value == close.value


def test_consistency_with_a_flat_reference_compares_colour() -> None:
    red = Image.new("RGB", (32, 32), (220, 30, 30))
    reddish = Image.blend(character(3, (32, 32)), red, 0.8)
    blue = Image.new("RGB", (32, 32), (30, 30, 220))
    assert scoring.consistency(reddish, [red]).details["measure"] == "mean_colour"
    assert scoring.consistency(reddish, [red]).value > scoring.consistency(blue, [red]).value
    with pytest.raises(ValueError):
        scoring.consistency(red, [])


def test_consistency_of_a_video_samples_its_frames(tmp_path: Path) -> None:
    reference = character(5, (64, 48))
    frames = [Image.blend(reference, box_frame(2 * i), 0.2) for i in range(9)]
    clip = write_video(tmp_path / "v.mp4", frames, fps=8)
    score = scoring.consistency(clip, [reference])
    assert score.details["pictures_compared"] == 3 and score.passed, score


def test_continuous_seams_pass_and_a_jump_fails(tmp_path: Path) -> None:
    segments = moving_box_segments(tmp_path, count=3, frames=9)
    smooth = scoring.seam_continuity(segments)
    # Steady motion: the seam steps are as big as the steps inside, give or take the codec.
    assert smooth.passed and smooth.value > 0.9, smooth.details
    assert [s["after_segment"] for s in smooth.details["seams"]] == [0, 1]
    assert all(s["shared_frame_change"] < 0.01 for s in smooth.details["seams"])
    jump = write_video(
        tmp_path / "jump.mp4",
        [box_frame(70 + 2 * i, (96, 48), (40, 240, 40)) for i in range(9)],
        fps=16,
    )
    broken = scoring.seam_continuity([segments[0], jump])
    assert not broken.passed and broken.details["seams"][0]["ratio"] > 2, broken.details
    joined = tmp_path / "joined.mp4"
    video.join_segments([segments[0], jump], joined, fps=16)
    on_joined = scoring.seam_continuity_joined(joined, [9])
    assert not on_joined.passed
    video.join_segments(segments, joined, fps=16)
    assert scoring.seam_continuity_joined(joined, [9, 17]).passed
