"""From nothing to a joined 12-second MP4 on three fake backends: a project, its bible,
a character with a reference, then generate; segments render in parallel, the join has
the frame count asked for and continuous seams; one segment rerenders alone."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest

from atelier.media.scoring import frame_change
from atelier.media.video import iter_frames
from atelier.testing import ThreadedFakeComfyUI
from atelier.testing.studio_models import with_studio_models
from tests.helpers import job
from tests.studio_support import make_character, make_project, run_of, run_reaches
from tests.workflow_support import BUILTIN_MODELS

FPS = 8
SECONDS = 12


@pytest.fixture
def three_fakes(tmp_path: Path) -> Iterator[list[ThreadedFakeComfyUI]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                ThreadedFakeComfyUI(
                    root_dir=tmp_path / f"comfy-{name}",
                    name=name,
                    models=with_studio_models(BUILTIN_MODELS),
                    step_time=0.05,
                )
            )
            for name in ("a", "b", "c")
        ]


async def test_a_project_to_a_joined_twelve_second_video_on_three_backends(
    server_factory: Any, tmp_path: Path, three_fakes: list[ThreadedFakeComfyUI]
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'v.db'}",
        [f"{name}={f.url}" for name, f in zip("abc", three_fakes, strict=True)],
        backend_slots=1,  # one job per backend at a time: parallel means several backends
        studio_resync_interval=0.5,
    )
    async with server.client() as client:
        project = await make_project(client, defaults={"quality": "fast_preview"})
        await client.put(
            f"/api/v1/projects/{project['id']}/bible",
            json={"title": "Moonlit", "style": {"style_prompt": "anime, night"}},
        )
        # No reference image: keyframes are drawn from the prompt (text to image), so
        # neighbouring keyframes differ and the segments really move between them.
        await make_character(client, project["id"], reference=False)
        response = await client.post(
            f"/api/v1/projects/{project['id']}/generate",
            json={
                "prompt": "walks along the harbour",
                "character": "Aiko",
                "duration": SECONDS,
                "fps": FPS,
                "width": 128,
                "height": 96,
                "steps": 40,  # 2 s of sampling per job: segment windows overlap even under load
                "scene_type": "dialogue",
            },
        )
        assert response.status_code == 202, response.text
        run = response.json()
        assert run["pipeline"] == "long_video"
        names = [s["name"] for s in run["steps"]]
        assert names == [
            *(f"keyframe_{i}" for i in range(4)),
            *(f"segment_{i}" for i in range(3)),
            "join",
            "seam_gate",
        ]

        seen: list[dict[str, Any]] = []
        while run["status"] in ("running", "pending"):
            run = await run_of(client, run["id"])
            if run["status"] == "running":
                seen.append(run["segments"])
        assert run["status"] == "completed", [s["scores"] for s in run["steps"]][-1]
        assert any(s["processing"] >= 1 and s["total"] == 3 for s in seen), seen
        assert seen[0] == {**seen[0], "total": 3, "completed": 0}
        assert run["segments"]["completed"] == 3 and run["segments"]["failed"] == 0
        assert run["segments"]["seconds_per_segment"] > 0

        steps = {s["name"]: s for s in run["steps"]}
        windows = []
        for index in range(3):
            segment = await job(client, steps[f"segment_{index}"]["job_id"])
            assert segment["workflow"] == "first_last_video"
            windows.append(
                (
                    datetime.fromisoformat(segment["started_at"]),
                    datetime.fromisoformat(segment["finished_at"]),
                    segment["backend"],
                )
            )
        overlapping = {
            backend
            for i, (start, end, backend) in enumerate(windows)
            for j, (start2, end2, backend2) in enumerate(windows)
            if i != j and backend != backend2 and start < end2 and start2 < end
        }
        assert len(overlapping) >= 2, windows
        gate = steps["seam_gate"]
        assert gate["status"] == "completed" and gate["scores"][0]["passed"], gate["scores"]

        joined = run["outputs"][0]
        assert joined["content_type"] == "video/mp4"
        data = (await client.get(joined["url"])).content
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            frames = sum(1 for _ in container.decode(stream))
        assert abs(frames - SECONDS * FPS) <= 1, frames
        path = tmp_path / "joined.mp4"
        path.write_bytes(data)
        with av.open(str(path)) as container:
            duration = float(container.duration or 0) / av.time_base
        assert abs(duration - SECONDS) <= 1 / FPS + 1e-6, duration

        # Every seam is continuous: no bigger a change than the largest inside a segment.
        changes = []
        previous = None
        for frame in iter_frames(path):
            if previous is not None:
                changes.append(frame_change(previous, frame))
            previous = frame
        seams = {32, 64}  # the change into frame 33 and into frame 65 (0-based steps)
        inside = max(c for i, c in enumerate(changes) if i not in seams)
        assert all(changes[i] <= inside for i in seams), (changes[32], changes[64], inside)

        # One segment rerenders alone; the join (and its gate) is redone.
        before = {name: steps[name]["job_id"] for name in ("segment_0", "segment_1", "segment_2")}
        rerender = await client.post(
            f"/api/v1/runs/{run['id']}/steps/segment_1/rerender", params={"reseed": "true"}
        )
        assert rerender.status_code == 202, rerender.text
        again = await run_reaches(client, run["id"], "completed", "failed", "awaiting_review")
        assert again["status"] == "completed", again
        after = {s["name"]: s for s in again["steps"]}
        assert after["segment_0"]["job_id"] == before["segment_0"]
        assert after["segment_2"]["job_id"] == before["segment_2"]
        assert after["segment_1"]["job_id"] != before["segment_1"]
        assert after["segment_1"]["tries"] == 2 and after["join"]["tries"] == 2
        assert after["keyframe_0"]["tries"] == 1
        assert again["outputs"][0]["id"] != joined["id"]
