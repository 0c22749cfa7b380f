"""AsyncAtelier against a real server on a real socket, with the fake ComfyUI."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from atelier.client import (
    AsyncAtelier,
    CapabilityMissing,
    Forbidden,
    GraphInvalid,
    Job,
    JobNotFound,
    JobStateConflict,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
    WorkflowNotFound,
)
from atelier.testing import ThreadedFakeComfyUI
from tests.graphs import image_graph, sampler_graph


def png(color: str = "red", size: int = 40) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def atelier(server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path) -> Any:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with AsyncAtelier(server.url, api_key="") as client:
        yield client


async def test_workflow_with_an_upload_runs_and_its_output_is_a_real_image(
    atelier: AsyncAtelier, tmp_path: Path
) -> None:
    names = {w.name: w for w in await atelier.workflows()}
    assert "invert" in names and names["invert"].parameters == ["image"]
    detail = await atelier.workflow("invert")
    assert detail.name == "invert" and "image" in detail.parameters_schema["properties"]
    assert detail.parameter("image")  # the image parameter's JSON Schema
    assert detail.backends and detail.backends[0].can_run is True

    upload = await atelier.upload(png("red"), filename="red.png")
    assert upload.kind == "image" and upload.width == 40 and upload.job_id is None

    job = await atelier.run("invert", {"image": upload.id}, timeout=60)
    assert isinstance(job, Job) and job.status == "completed" and job.workflow == "invert"
    assert job.progress == 1.0 and len(job.outputs) == 1

    paths = await atelier.save_outputs(job, tmp_path / "out")
    assert [p.parent for p in paths] == [tmp_path / "out"] and paths[0].suffix == ".png"
    with Image.open(paths[0]) as image:
        assert image.size == (40, 40)
        assert image.convert("RGB").getpixel((5, 5)) == (0, 255, 255)  # red inverted
    assert await atelier.download(job.outputs[0]) == paths[0].read_bytes()
    assert await atelier.download(job.outputs[0].url) == paths[0].read_bytes()  # signed link


async def test_events_follow_a_sampler_job_and_replay_after_an_id(
    atelier: AsyncAtelier, fake: ThreadedFakeComfyUI
) -> None:
    fake.fake.set_timing(step_time=0.02)
    job = await atelier.submit(sampler_graph(steps=6), labels={"sdk": "async"})
    assert job.status in ("queued", "running")
    events = [event async for event in atelier.events(job.id)]
    types = [e.type for e in events]
    assert types[0] == "queued" and types[-1] == "completed" and events[-1].terminal
    steps = [e.data.get("step") for e in events if e.type == "progress" and e.data.get("max")]
    assert steps and max(s for s in steps if s is not None) == 6
    ids = [e.id for e in events]
    assert ids == sorted(set(ids))

    replayed = [e async for e in atelier.events(job.id, after=ids[2])]
    assert [e.id for e in replayed] == ids[3:]

    page = await atelier.jobs(labels={"sdk": "async"}, status="completed")
    assert [j.id for j in page.items] == [job.id]


async def test_wait_times_out_with_the_job_as_last_seen_then_cancel(
    atelier: AsyncAtelier, fake: ThreadedFakeComfyUI
) -> None:
    fake.fake.set_timing(step_time=0.2)
    job = await atelier.submit(sampler_graph(steps=200))
    with pytest.raises(WaitTimeout) as caught:
        await atelier.wait(job.id, timeout=0.5)
    assert caught.value.job.id == job.id and caught.value.job.status in ("queued", "running")
    await atelier.cancel(job.id)
    ended = await atelier.wait(job.id, timeout=30)
    assert ended.status == "cancelled"
    retried = await atelier.retry(job.id)
    assert retried.status in ("queued", "running") and retried.id == job.id
    with pytest.raises(JobStateConflict):
        await atelier.delete(job.id)  # not finished
    await atelier.cancel(job.id)
    assert (await atelier.wait(job.id, timeout=30)).status == "cancelled"
    await atelier.delete(job.id)
    with pytest.raises(JobNotFound):
        await atelier.job(job.id)


async def test_problems_are_typed_errors_carrying_the_problem_document(
    atelier: AsyncAtelier,
) -> None:
    with pytest.raises(JobNotFound) as not_found:
        await atelier.job("no-such-job")
    assert not_found.value.status == 404 and not_found.value.type.endswith("/job-not-found")
    with pytest.raises(WorkflowNotFound):
        await atelier.workflow("no_such_workflow")

    graph = image_graph()
    graph["2"]["class_type"] = "NoSuchNode"
    with pytest.raises(GraphInvalid) as invalid:
        await atelier.submit(graph)
    assert invalid.value.errors[0]["node_id"] == "2" and "NoSuchNode" in invalid.value.detail

    with pytest.raises(ValidationFailed) as bad_param:
        await atelier.submit(workflow="resize", params={"width": "wide"})
    fields = [e.get("field") for e in bad_param.value.errors]
    assert any("width" in str(f) for f in fields), bad_param.value.problem

    with pytest.raises(CapabilityMissing) as missing:
        await atelier.submit(workflow="txt2video_animatediff", params={"prompt": "a cat"})
    assert missing.value.problem["missing"]["node_classes"], missing.value.problem
    with pytest.raises(ValueError, match="either a graph or a workflow"):
        await atelier.submit()


async def test_keys_scopes_and_limits(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", [fake.url], rate_limit_per_minute=1000
    )
    async with AsyncAtelier(server.url, api_key="") as anonymous:
        admin = await anonymous.create_key("ops", ["admin"])  # the first key: no key yet
    assert admin.key.startswith("atk_") and admin.scopes == ["admin"]
    async with AsyncAtelier(server.url, api_key=admin.key) as ops:
        reader = await ops.create_key("alice", ["read"], rate_limit=2)
        assert {k.name for k in await ops.keys()} == {"ops", "alice"}
        async with AsyncAtelier(server.url, api_key=reader.key) as alice:
            assert (await alice.jobs()).items == []
            with pytest.raises(Forbidden) as forbidden:
                await alice.submit(image_graph())
            assert forbidden.value.problem["required_scope"] == "submit"
            with pytest.raises(RateLimited) as limited:
                for _ in range(5):
                    await alice.jobs()
            assert limited.value.retry_after and limited.value.retry_after > 0
            assert limited.value.limit == "requests_per_minute"
        await ops.revoke_key(reader.id)
        assert [k.name for k in await ops.keys()] == ["ops"]
        assert len(await ops.keys(include_revoked=True)) == 2
    async with AsyncAtelier(server.url, api_key=reader.key) as revoked:
        with pytest.raises(Unauthorized):
            await revoked.jobs()
    async with AsyncAtelier(server.url, api_key="") as nobody:
        with pytest.raises(Unauthorized) as unauthorized:
            await nobody.workflows()
    assert unauthorized.value.problem["status"] == 401
