"""Pipeline building, without a server: frame arithmetic and the DAGs."""

from __future__ import annotations

import pytest

from atelier.production.pipelines import (
    PIPELINES,
    Context,
    LongVideoParams,
    ThreePhaseParams,
    segment_frames,
    wan_frames,
)


@pytest.mark.parametrize("wanted, frames", [(96, 97), (32, 33), (33, 33), (1, 5), (80, 81)])
def test_wan_frames_are_the_nearest_4k_plus_1(wanted: int, frames: int) -> None:
    assert wan_frames(wanted) == frames


@pytest.mark.parametrize("total, count", [(97, 3), (81, 10), (41, 10), (161, 4), (5, 1)])
def test_segments_join_to_the_total_with_each_seam_frame_once(total: int, count: int) -> None:
    frames = segment_frames(total, count)
    assert len(frames) == count
    assert all(f >= 5 and (f - 1) % 4 == 0 for f in frames)
    assert sum(frames) - (count - 1) == total
    assert max(frames) - min(frames) <= 4


def test_too_few_frames_for_the_segments_is_an_error() -> None:
    with pytest.raises(ValueError):
        segment_frames(9, 3)


def test_long_video_dag() -> None:
    params = LongVideoParams(duration=12, fps=8, width=128, height=96, seed=5)
    plans = PIPELINES["long_video"].build(Context(params, pipeline="long_video"))
    by_name = {p.name: p for p in plans}
    assert [p.name for p in plans][-2:] == ["join", "seam_gate"]
    assert by_name["segment_1"].depends == ["keyframe_1", "keyframe_2"]
    assert by_name["segment_1"].spec["inputs"] == {
        "start_image": ["keyframe_1", 0],
        "end_image": ["keyframe_2", 0],
    }
    assert sum(by_name[f"segment_{i}"].spec["params"]["frames"] for i in range(3)) - 2 == 97
    assert by_name["join"].spec["frames"] == 97
    assert by_name["keyframe_0"].depends == []
    seeds = {by_name[f"keyframe_{i}"].spec["params"]["seed"] for i in range(4)}
    assert len(seeds) == 4  # every keyframe its own seed, all from the run's seed


def test_three_phase_waits_for_each_gate() -> None:
    params = ThreePhaseParams(poses=3, fps=8)
    plans = {p.name: p for p in PIPELINES["three_phase"].build(Context(params))}
    assert plans["sheet_gate"].depends == ["pose_0", "pose_1", "pose_2"]
    assert "sheet_gate" in plans["loop"].depends
    assert "loop_gate" in plans["shot"].depends
    assert plans["loop"].spec["params"]["frames"] == 17  # 2 s at 8 fps, last = first
    review_none = ThreePhaseParams(poses=1, review="none")
    names = [p.name for p in PIPELINES["three_phase"].build(Context(review_none))]
    assert names == ["pose_0", "loop", "shot"]
