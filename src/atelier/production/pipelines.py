"""The built-in pipelines: each turns its parameters into a DAG of steps.

A step is a workflow job (``job``), an Atelier-side join of video segments (``join``)
or a quality gate (``gate``). A job step's spec names its workflow and parameters, and
``inputs`` maps a media parameter to an earlier step's output (``[step, index]``); a
``fallback`` workflow runs instead when no backend can run the first choice (image edit
with a reference falls back to SD 1.5 img2img from the reference, which runs anywhere).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from atelier.db.studio_tables import BibleRow, CharacterRow, ProjectRow
from atelier.production.presets import MAX_SEGMENT_SECONDS, SCENE_TYPES, preset
from atelier.production.prompts import CharacterPrompt, ComposedPrompt, compose_prompt

JsonDict = dict[str, Any]
Review = Literal["auto", "manual", "none"]
DEFAULT_POSES = [
    "front view, standing",
    "three-quarter view, standing",
    "side view, standing",
    "back view, standing",
    "walking",
    "sitting",
    "waving",
    "close-up portrait",
]


class PipelineParams(BaseModel):
    """What every pipeline takes."""

    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(None, max_length=64, description="Project id: bible, defaults.")
    character: str | None = Field(None, max_length=100, description="Character name or id.")
    prompt: str = Field("", max_length=4000, description="The shot's own prompt.")
    negative_prompt: str = Field("", max_length=4000)
    scene_type: Literal["dialogue", "action", "emotional", "epic"] | None = None
    quality: Literal["fast_preview", "production", "ultra"] | None = Field(
        None, description="A preset (GET /presets); the project's default otherwise."
    )
    width: int | None = Field(None, ge=64, le=2048)
    height: int | None = Field(None, ge=64, le=2048)
    steps: int | None = Field(None, ge=1, le=100)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    gate_threshold: float = Field(0.8, ge=0, le=1, description="A gate passes at this score.")
    max_rerolls: int = Field(2, ge=0, le=10, description="Rerolls before a person decides.")
    review: Review = Field(
        "auto", description="auto: gates score and reroll; manual: a person decides; none: no gates"
    )


class StillParams(PipelineParams):
    pass


class CharacterSheetParams(PipelineParams):
    poses: int = Field(8, ge=1, le=32)
    pose_prompts: list[str] = Field(default_factory=list, max_length=32)


class VideoParams(PipelineParams):
    duration: float = Field(5.0, gt=0, le=600, description="Seconds.")
    fps: int | None = Field(None, ge=1, le=60)


class LoopParams(VideoParams):
    duration: float = Field(2.0, gt=0, le=30)


class FullVideoParams(VideoParams):
    duration: float = Field(5.0, gt=0, le=30)


class ThreePhaseParams(CharacterSheetParams):
    loop_duration: float = Field(2.0, gt=0, le=30)
    video_duration: float = Field(5.0, gt=0, le=30)
    fps: int | None = Field(None, ge=1, le=60)


class LongVideoParams(VideoParams):
    duration: float = Field(12.0, gt=0, le=600)
    segments: int | Literal["auto"] = Field(
        "auto", description=f"auto: one per {MAX_SEGMENT_SECONDS:g} s or one per shot."
    )
    shots: list[str] = Field(
        default_factory=list, max_length=120, description="One prompt per keyframe or segment."
    )


@dataclass
class StepPlan:
    name: str
    kind: str  # job, join, gate
    spec: JsonDict
    depends: list[str] = field(default_factory=list)
    group: str = ""


@dataclass
class Context:
    """What a pipeline builds from: the project, its bible, the character, the preset."""

    params: PipelineParams
    project: ProjectRow | None = None
    bible: BibleRow | None = None
    character: CharacterRow | None = None
    pipeline: str = ""
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        defaults = (self.project.defaults if self.project else None) or {}
        self.values = preset(self.params.quality or defaults.get("quality"))
        for key in ("width", "height", "fps"):
            if defaults.get(key):
                self.values[key] = defaults[key]
        for key in ("width", "height", "steps"):
            given = getattr(self.params, key)
            if given is not None:
                self.values[key] = given
        fps = getattr(self.params, "fps", None)
        if fps is not None:
            self.values["fps"] = fps
        self.checkpoint = defaults.get("checkpoint")
        base = self.params.seed
        if base is None and self.character is not None:
            base = self.character.seed
        self.base_seed = base if base is not None else self.rng.randrange(2**32)

    def seed(self, offset: int) -> int:
        return (self.base_seed + offset) % 2**32

    @property
    def reference(self) -> str | None:
        if self.character is not None and self.character.references:
            return self.character.references[0]
        return None

    def compose(self, shot: str) -> ComposedPrompt:
        style = (self.bible.style if self.bible else None) or {}
        characters = []
        if self.character is not None:
            characters.append(
                CharacterPrompt(
                    name=self.character.name,
                    fragment=self.character.prompt_fragment,
                    visual_traits=self.character.visual_traits,
                    lora=self.character.lora,
                )
            )
        scene = SCENE_TYPES[self.params.scene_type]["prompt"] if self.params.scene_type else ""
        return compose_prompt(
            style_prompt=str(style.get("style_prompt", "")),
            style_negative=str(style.get("negative_prompt", "")),
            characters=characters,
            shot=shot,
            shot_negative=self.params.negative_prompt,
            extra=scene,
        )

    def record(self, step: str, composed: ComposedPrompt) -> JsonDict:
        """What the step's job records in its metadata (``studio``)."""
        return {
            "pipeline": self.pipeline,
            "step": step,
            "project": self.project.id if self.project else None,
            "characters": [self.character.id] if self.character else [],
            "prompt": composed.prompt,
            "negative_prompt": composed.negative_prompt,
        }

    def job(
        self,
        name: str,
        workflow: str,
        params: JsonDict,
        composed: ComposedPrompt,
        *,
        inputs: dict[str, list[Any]] | None = None,
        output: str = "image",
        fallback: JsonDict | None = None,
        group: str = "",
        depends: list[str] | None = None,
    ) -> StepPlan:
        spec: JsonDict = {
            "workflow": workflow,
            "params": params,
            "inputs": inputs or {},
            "output": output,
            "record": self.record(name, composed),
        }
        if fallback is not None:
            spec["fallback"] = fallback
        needs = sorted({source for source, _ in (inputs or {}).values()} | set(depends or []))
        return StepPlan(name, "job", spec, needs, group)

    # Building blocks

    def still(
        self, name: str, shot: str, offset: int, *, group: str = "keyframe", pose: str = ""
    ) -> StepPlan:
        """One image: an edit of the character's reference, else text to image."""
        composed = self.compose(", ".join(p for p in (shot, pose) if p))
        seed = self.seed(offset)
        sd15 = {
            "prompt": composed.prompt,
            "negative_prompt": composed.negative_prompt,
            "seed": seed,
            "steps": self.values["steps"],
        }
        if self.checkpoint:
            sd15["checkpoint"] = self.checkpoint
        if composed.loras:
            sd15["loras"] = list(composed.loras)
        reference = self.reference
        if reference is None:
            params = {**sd15, "width": self.values["width"], "height": self.values["height"]}
            return self.job(name, "txt2img_sd15", params, composed, group=group)
        # Qwen image edit with the reference (ComfyUI core nodes); SD 1.5 img2img from
        # the reference where no backend has the Qwen models.
        edit = {
            "reference": reference,
            "prompt": composed.prompt,
            "negative_prompt": composed.negative_prompt,
            "width": max(256, self.values["width"]),
            "height": max(256, self.values["height"]),
            "seed": seed,
            "steps": self.values["steps"],
        }
        fallback = {"workflow": "img2img", "params": {**sd15, "image": reference, "denoise": 0.6}}
        return self.job(name, "reference_edit", edit, composed, fallback=fallback, group=group)

    def video_between(
        self,
        name: str,
        start: str,
        end: str,
        shot: str,
        frames: int,
        offset: int,
        *,
        group: str = "segment",
    ) -> StepPlan:
        """A first-last-frame video from ``start``'s output to ``end``'s output."""
        composed = self.compose(shot)
        params = {
            "prompt": composed.prompt,
            "negative_prompt": composed.negative_prompt,
            "steps": self.values["steps"],
            "frames": frames,
            "fps": self.values["fps"],
            "width": self.values["width"],
            "height": self.values["height"],
            "seed": self.seed(offset),
        }
        fallback = {
            "workflow": "img2video_svd",
            "params": {k: params[k] for k in ("fps", "width", "height", "seed")}
            | {"frames": min(frames, 64), "steps": self.values["steps"]},
            "inputs": {"image": [start, 0]},
        }
        return self.job(
            name,
            "first_last_video",
            params,
            composed,
            inputs={"start_image": [start, 0], "end_image": [end, 0]},
            output="video",
            fallback=fallback,
            group=group,
        )

    def video_from(self, name: str, start: str, shot: str, frames: int, offset: int) -> StepPlan:
        """An image-to-video shot moving ``start``'s output (Wan; SVD as the fallback)."""
        composed = self.compose(shot)
        motion = SCENE_TYPES[self.params.scene_type]["motion"] if self.params.scene_type else 127
        params = {
            "prompt": composed.prompt,
            "negative_prompt": composed.negative_prompt,
            "steps": self.values["steps"],
            "frames": frames,
            "fps": self.values["fps"],
            "width": self.values["width"],
            "height": self.values["height"],
            "seed": self.seed(offset),
        }
        fallback = {
            "workflow": "img2video_svd",
            "params": {k: params[k] for k in ("fps", "width", "height", "seed")}
            | {"frames": min(frames, 64), "steps": self.values["steps"], "motion": motion},
            "inputs": {"image": [start, 0]},
        }
        return self.job(
            name,
            "img2video_wan",
            params,
            composed,
            inputs={"start_image": [start, 0]},
            output="video",
            fallback=fallback,
            group="shot",
        )

    def gate(
        self,
        name: str,
        targets: list[str],
        scorers: list[str],
        *,
        group: str = "gate",
        frames: int | None = None,
    ) -> StepPlan | None:
        """Scores the targets' outputs; rerolls the ones below the threshold."""
        if self.params.review == "none":
            return None
        spec = {
            "targets": targets,
            "scorers": scorers,
            "threshold": self.params.gate_threshold,
            "max_rerolls": self.params.max_rerolls,
            "manual": self.params.review == "manual",
            "reference": self.reference,
            "expect": {
                "width": self.values["width"],
                "height": self.values["height"],
                "fps": self.values["fps"],
                "frames": frames,
            },
        }
        return StepPlan(name, "gate", spec, list(targets), group)

    def frames(self, seconds: float) -> int:
        """Frames for ``seconds``, as Wan renders them: 4k+1, the nearest to seconds x fps."""
        return wan_frames(seconds * int(self.values["fps"]))


def wan_frames(wanted: float) -> int:
    """The 4k+1 frame count (at least 5) nearest to ``wanted``."""
    return 4 * max(1, round((wanted - 1) / 4)) + 1


def _add(plans: list[StepPlan], plan: StepPlan | None) -> str | None:
    if plan is None:
        return None
    plans.append(plan)
    return plan.name


def build_still(ctx: Context) -> list[StepPlan]:
    plans = [ctx.still("image", ctx.params.prompt, 0, group="still")]
    _add(plans, ctx.gate("image_gate", ["image"], ["technical", "consistency"]))
    return plans


def _sheet(ctx: Context, plans: list[StepPlan]) -> list[str]:
    params = ctx.params
    assert isinstance(params, CharacterSheetParams)
    poses = params.pose_prompts or [
        DEFAULT_POSES[i % len(DEFAULT_POSES)] for i in range(params.poses)
    ]
    names = []
    for index, pose in enumerate(poses):
        name = f"pose_{index}"
        plans.append(ctx.still(name, params.prompt, index, group="pose", pose=pose))
        names.append(name)
    gate = _add(plans, ctx.gate("sheet_gate", names, ["technical", "consistency"]))
    if gate is not None and ctx.character is not None:
        # Once passed or approved, the sheet becomes the character's reference.
        plans[-1].spec["adopt_references"] = ctx.character.id
    return [gate] if gate else names


def build_character_sheet(ctx: Context) -> list[StepPlan]:
    plans: list[StepPlan] = []
    _sheet(ctx, plans)
    return plans


def _keyframe(ctx: Context, plans: list[StepPlan]) -> str:
    """The loop's and the shot's first frame: the character's reference, or a new still."""
    plans.append(ctx.still("keyframe", ctx.params.prompt, 0))
    return "keyframe"


def build_animation_loop(ctx: Context) -> list[StepPlan]:
    plans: list[StepPlan] = []
    start = _keyframe(ctx, plans)
    assert isinstance(ctx.params, VideoParams)
    frames = ctx.frames(ctx.params.duration + 1 / int(ctx.values["fps"]))  # last = first
    plans.append(
        ctx.video_between("loop", start, start, ctx.params.prompt, frames, 1, group="loop")
    )
    _add(plans, ctx.gate("loop_gate", ["loop"], ["technical"], frames=frames))
    return plans


def build_full_video(ctx: Context) -> list[StepPlan]:
    plans: list[StepPlan] = []
    start = _keyframe(ctx, plans)
    assert isinstance(ctx.params, VideoParams)
    frames = ctx.frames(ctx.params.duration)
    plans.append(ctx.video_from("shot", start, ctx.params.prompt, frames, 1))
    _add(plans, ctx.gate("shot_gate", ["shot"], ["technical"], frames=frames))
    return plans


def build_three_phase(ctx: Context) -> list[StepPlan]:
    """Phase 1 the character sheet, 2 a loop from its first pose, 3 a shot from it; a
    gate after each phase, and each phase waits for the one before."""
    params = ctx.params
    assert isinstance(params, ThreePhaseParams)
    plans: list[StepPlan] = []
    after_sheet = _sheet(ctx, plans)
    loop_frames = ctx.frames(params.loop_duration + 1 / int(ctx.values["fps"]))  # last = first
    loop = ctx.video_between(
        "loop", "pose_0", "pose_0", params.prompt, loop_frames, 100, group="loop"
    )
    loop.depends = sorted(set(loop.depends) | set(after_sheet))
    plans.append(loop)
    loop_gate = _add(plans, ctx.gate("loop_gate", ["loop"], ["technical"], frames=loop_frames))
    shot_frames = ctx.frames(params.video_duration)
    shot = ctx.video_from("shot", "pose_0", params.prompt, shot_frames, 200)
    shot.depends = sorted(set(shot.depends) | {loop_gate or "loop"})
    plans.append(shot)
    _add(plans, ctx.gate("shot_gate", ["shot"], ["technical"], frames=shot_frames))
    return plans


def segment_frames(total: int, segments: int) -> list[int]:
    """Frames each segment renders (each 4k+1, as Wan renders) so that the join, which
    writes each shared seam frame once, has ``total`` (4K+1) frames: the segments' frames
    add up to total + segments - 1."""
    units = (total - 1) // 4
    if units < segments:
        raise ValueError(f"{total} frames cannot make {segments} segments of 5 or more")
    base, extra = divmod(units, segments)
    return [4 * (base + (1 if i < extra else 0)) + 1 for i in range(segments)]


def build_long_video(ctx: Context) -> list[StepPlan]:
    """Keyframes k0..kn in parallel, segments k_i -> k_i+1 in parallel, then the join."""
    params = ctx.params
    assert isinstance(params, LongVideoParams)
    if params.segments == "auto":
        count = len(params.shots) or max(1, math.ceil(params.duration / MAX_SEGMENT_SECONDS))
    else:
        count = params.segments
    total = ctx.frames(params.duration)
    count = max(1, min(count, (total - 1) // 4))
    shots = params.shots or [params.prompt]
    plans: list[StepPlan] = []
    for index in range(count + 1):
        plans.append(ctx.still(f"keyframe_{index}", shots[min(index, len(shots) - 1)], index))
    for index, frames in enumerate(segment_frames(total, count)):
        shot = shots[min(index, len(shots) - 1)]
        plans.append(
            ctx.video_between(
                f"segment_{index}",
                f"keyframe_{index}",
                f"keyframe_{index + 1}",
                shot,
                frames,
                1000 + index,
            )
        )
    segments = [f"segment_{i}" for i in range(count)]
    join = StepPlan(
        "join",
        "join",
        {"segments": segments, "fps": ctx.values["fps"], "crf": ctx.values["crf"], "frames": total},
        segments,
        "join",
    )
    plans.append(join)
    gate = ctx.gate("seam_gate", ["join"], ["technical", "seams"])
    if gate is not None:
        gate.spec["expect"]["frames"] = total
        gate.spec["segments"] = segments
        gate.spec["max_rerolls"] = 0  # a join made again is the same join: ask a person
        plans.append(gate)
    return plans


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    params: type[PipelineParams]
    build: Callable[[Context], list[StepPlan]]


PIPELINES: dict[str, Pipeline] = {
    p.name: p
    for p in (
        Pipeline(
            "still",
            "One image of the shot (the character edited from its reference, else text to image).",
            StillParams,
            build_still,
        ),
        Pipeline(
            "character_sheet",
            "N poses of one character, consistent through its "
            "reference image (image edit; SD 1.5 img2img as the fallback).",
            CharacterSheetParams,
            build_character_sheet,
        ),
        Pipeline(
            "animation_loop",
            "A loop of the character: first-last-frame video with the same frame at both ends.",
            LoopParams,
            build_animation_loop,
        ),
        Pipeline(
            "full_video",
            "A shot from a keyframe: image to video (Wan; SVD as the fallback).",
            FullVideoParams,
            build_full_video,
        ),
        Pipeline(
            "three_phase",
            "Character sheet, then a loop, then a shot, with a gate after each phase.",
            ThreePhaseParams,
            build_three_phase,
        ),
        Pipeline(
            "long_video",
            "A long video by segments: keyframes in parallel, "
            "first-last-frame segments between neighbours in parallel, one MP4 joined "
            "with each seam frame once.",
            LongVideoParams,
            build_long_video,
        ),
    )
}
