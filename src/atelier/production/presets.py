"""Quality presets and scene types: the documented parameters a name stands for."""

from __future__ import annotations

from typing import Any

# steps per image or video, size, frames per second and H.264 CRF of joined videos.
PRESETS: dict[str, dict[str, Any]] = {
    "fast_preview": {"steps": 8, "width": 512, "height": 288, "fps": 8, "crf": 28},
    "production": {"steps": 30, "width": 832, "height": 480, "fps": 16, "crf": 20},
    "ultra": {"steps": 50, "width": 1280, "height": 720, "fps": 24, "crf": 17},
}
DEFAULT_PRESET = "production"

# Each scene type adds words to the prompt and sets how much the video moves.
SCENE_TYPES: dict[str, dict[str, Any]] = {
    "dialogue": {"prompt": "medium close-up, subtle motion, calm camera", "motion": 40},
    "action": {"prompt": "dynamic motion, fast camera movement, motion blur", "motion": 180},
    "emotional": {"prompt": "close-up, soft lighting, slow motion", "motion": 60},
    "epic": {"prompt": "wide shot, sweeping camera, dramatic lighting", "motion": 127},
}

# The longest shot one video job renders; longer durations become segments.
MAX_SEGMENT_SECONDS = 5.0


def preset(name: str | None) -> dict[str, Any]:
    """The preset's values (the default's when ``name`` is None)."""
    return dict(PRESETS[name or DEFAULT_PRESET])
