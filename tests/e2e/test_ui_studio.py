"""The studio's pages in a real Chromium against a real server, a real database and the
fake ComfyUI: make a project, write its bible, add a character with a reference picture,
generate a video by segments and watch it finish, approve a run held for review, and
find the published video in the gallery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Browser, Page, expect

from atelier.testing import ThreadedFakeComfyUI
from tests.e2e.browser import open_browser, screenshot
from tests.studio_support import run_of
from tests.workflow_support import BUILTIN_MODELS


@pytest.fixture
def studio_fake(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy", name="gpu-1", models=BUILTIN_MODELS, step_time=0.02
    ) as fake:
        yield fake


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async for opened in open_browser():
        yield opened


@pytest.fixture
async def server(server_factory: Any, studio_fake: ThreadedFakeComfyUI, tmp_path: Path) -> Any:
    return await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}",
        [f"gpu-1={studio_fake.url}"],
        studio_resync_interval=0.5,
    )


async def new_page(browser: Browser, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def reference_picture(path: Path) -> Path:
    image = Image.new("RGB", (64, 64), (20, 30, 60))
    draw = ImageDraw.Draw(image)
    draw.ellipse((16, 8, 48, 32), fill=(240, 200, 170))
    draw.rectangle((21, 32, 43, 60), fill=(200, 40, 60))
    image.save(path)
    return path


async def make_project_in_the_ui(page: Page, url: str, name: str) -> str:
    await page.goto(f"{url}/ui/projects")
    await expect(page.locator("#projects-empty")).to_be_visible()
    await page.fill("#p-name", name)
    await page.fill("#p-description", "A short film about a girl and the moon.")
    await page.get_by_role("button", name="Create project").click()
    await page.wait_for_url("**/ui/projects/*")
    await expect(page.locator("#project-name")).to_have_text(name)
    await expect(page.locator("#project")).to_have_attribute("data-ready", "true")
    return page.url.rsplit("/", 1)[1]


async def generate(page: Page, *, review: str, character: str | None) -> str:
    await page.fill("#g-prompt", "walking under the moon")
    if character:
        await page.select_option("#g-character", character)
    await page.fill("#g-duration", "2")
    await page.fill("#g-segments", "2")
    await page.select_option("#g-quality", "fast_preview")
    await page.select_option("#g-review", review)
    await page.locator("#generate-card summary").click()
    await page.fill("#g-width", "64")
    await page.fill("#g-height", "64")
    await page.fill("#g-steps", "2")
    await page.get_by_role("button", name="Generate").click()
    await page.wait_for_url("**/ui/runs/*")
    return page.url.rsplit("/", 1)[1]


async def test_a_project_its_bible_a_character_and_a_video_by_segments(
    server: Any, browser: Browser, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    project_id = await make_project_in_the_ui(page, server.url, "Moonlit")

    # The bible: style, negative prompt, palette (swatches), world setting.
    await page.fill("#b-style_prompt", "watercolor, soft light")
    await page.fill("#b-negative_prompt", "blurry, text")
    await page.fill("#b-palette", "#1d3557, #e63946, teal")
    await expect(page.locator("#b-swatches .swatch")).to_have_count(3)
    await page.fill("#b-world", "era: near future\nplace: a floating city\nmoons: 2")
    await page.get_by_role("button", name="Save bible").click()
    await expect(page.locator("#bible-saved")).to_contain_text("saved")

    # A character: a bad LoRA is a 422 on that field, then a good one saves.
    await page.get_by_role("button", name="Add character").click()
    await page.fill("#c-name", "Aiko")
    await page.fill("#c-prompt_fragment", "aiko, 1girl")
    await page.fill("#c-visual_traits", "hair: silver\neyes: green")
    await page.fill("#c-lora", "no weight")
    await page.get_by_role("button", name="Save character").click()
    await expect(page.locator('[data-field="lora"]')).to_have_class("field invalid")
    await page.fill("#c-lora", "aiko_v2.safetensors:0.8")
    await page.get_by_role("button", name="Save character").click()
    card = page.locator('.character[data-name="Aiko"]')
    await expect(card).to_contain_text("hair: silver")
    await expect(card).to_contain_text("aiko_v2.safetensors:0.8")

    # A reference picture by upload shows as a thumbnail.
    await card.locator('input[type="file"]').set_input_files(
        str(reference_picture(tmp_path / "aiko.png"))
    )
    thumb = card.locator(".ref img")
    await expect(thumb).to_have_count(1)
    await expect(thumb).to_have_js_property("complete", True)
    assert await thumb.evaluate("img => img.naturalWidth") == 64
    await expect(page.locator("#g-character option", has_text="Aiko")).to_have_count(1)
    await screenshot(page, "studio-project")

    async with server.client() as client:
        bible = (await client.get(f"/api/v1/projects/{project_id}/bible")).json()
        aiko = (await client.get(f"/api/v1/projects/{project_id}/characters/Aiko")).json()
    assert bible["style"]["palette"] == ["#1d3557", "#e63946", "teal"]
    assert bible["world"] == {"era": "near future", "place": "a floating city", "moons": 2}
    assert bible["style"]["negative_prompt"] == "blurry, text"
    assert aiko["visual_traits"] == {"hair": "silver", "eyes": "green"}
    assert len(aiko["references"]) == 1 and aiko["references"][0]["width"] == 64

    # Generate 2 s in 2 segments; the run page follows it to the end.
    run_id = await generate(page, review="none", character="Aiko")
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=60000)
    segments = page.locator("#timeline .segment")
    await expect(segments).to_have_count(2)
    for segment in await segments.all():
        await expect(segment).to_have_attribute("data-state", "completed")
    await expect(page.locator("#timeline-counts")).to_contain_text("2 of 2 completed")
    await expect(page.locator("#run-progress")).to_have_attribute("aria-valuenow", "100")
    video = page.locator("#run-outputs video")
    await expect(video).to_have_attribute("controls", "")
    await page.wait_for_function(
        "() => document.querySelector('#run-outputs video').readyState >= 1"
    )
    steps = page.locator("#run-steps tbody tr")
    await expect(steps).to_have_count(6)  # 3 keyframes, 2 segments, the join
    job_link = page.locator('#run-steps tr[data-step="segment_0"] a')
    await expect(page.locator("#run-approve")).to_be_hidden()
    await screenshot(page, "studio-run")

    async with server.client() as client:
        run = await run_of(client, run_id)
    assert run["status"] == "completed" and run["pipeline"] == "long_video"
    assert run["params"]["character"] == "Aiko" and run["segments"]["completed"] == 2
    segment_job = {s["name"]: s for s in run["steps"]}["segment_0"]["job_id"]
    assert await job_link.get_attribute("href") == f"/ui/jobs/{segment_job}"

    # Publish the project: its video is in the gallery's Studio tab, as a poster frame.
    await page.goto(f"{server.url}/ui/projects/{project_id}")
    await expect(page.locator("#project")).to_have_attribute("data-ready", "true")
    # More references: a URL the server refuses (a private address) says why; an
    # earlier output (a keyframe of the run) is added.
    card = page.locator('.character[data-name="Aiko"]')
    await card.get_by_role("button", name="URL").click()
    await card.locator('input[type="url"]').fill("https://127.0.0.1/aiko.png")
    await card.get_by_role("button", name="Add", exact=True).click()
    await expect(card.locator(".ref-add .muted.small")).not_to_be_empty()
    await expect(card.locator(".ref img")).to_have_count(1)
    await card.get_by_role("button", name="Earlier output").click()
    await card.locator(".pick").first.click()
    await expect(card.locator(".ref img")).to_have_count(2)
    await page.check("#d-published")
    await page.get_by_role("button", name="Save defaults").click()
    await expect(page.locator("#defaults-saved")).to_contain_text("saved")
    await expect(page.locator('#project-runs tr[data-status="completed"]')).to_have_count(1)
    await page.goto(f"{server.url}/ui/gallery")
    await page.get_by_role("tab", name="Studio").click()
    # Every output of a published project: 3 keyframes, 2 segments and the joined video.
    await expect(page.locator(".tile")).to_have_count(6)
    await page.select_option("#filter-kind", "video")
    await expect(page.locator(".tile.kind-video")).to_have_count(3)
    await expect(page.locator(".tile")).to_have_count(3)
    joined = page.locator(".tile.kind-video", has_text="join")
    poster = joined.locator("img")  # the poster frame, not the whole video
    await expect(poster).to_have_js_property("complete", True)
    assert await poster.evaluate("img => img.naturalWidth") > 0
    await expect(joined.locator("a.thumb")).to_have_attribute("href", f"/ui/runs/{run_id}")
    await screenshot(page, "studio-gallery")
    assert errors == []


async def test_a_run_held_for_review_is_rejected_retried_and_approved_and_one_cancelled(
    server: Any, browser: Browser
) -> None:
    async with server.client() as client:
        made = await client.post("/api/v1/projects", json={"name": "Harbour", "status": "active"})
        assert made.status_code == 201, made.text
    project_id = made.json()["id"]
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{server.url}/ui/projects")
    row = page.locator(f'tr[data-project-id="{project_id}"]')
    await expect(row).to_contain_text("Harbour")
    await expect(row.locator(".badge")).to_have_text("active")
    await screenshot(page, "studio-projects")
    await row.get_by_role("link", name="Harbour").click()
    await expect(page.locator("#project")).to_have_attribute("data-ready", "true")

    # A manual review: the seam gate scores the joined video, then waits for a person.
    run_id = await generate(page, review="manual", character=None)
    await expect(page.locator("#run-status")).to_have_text("awaiting_review", timeout=60000)
    await expect(page.locator("#run-review")).to_be_visible()
    gate = page.locator('#run-steps tr[data-step="seam_gate"]')
    await expect(gate.locator(".badge")).to_have_text("awaiting_review")
    await expect(gate.locator(".score", has_text="seam_continuity")).to_have_count(1)
    await expect(gate.locator(".score").first).to_contain_text("/ 1.00")
    await expect(page.locator("#timeline .segment[data-state=completed]")).to_have_count(2)

    # The runs page lists it under "Awaiting review".
    await page.goto(f"{server.url}/ui/runs")
    await page.get_by_role("tab", name="Awaiting review").click()
    listed = page.locator(f'#runs tr[data-run-id="{run_id}"]')
    await expect(listed.locator(".badge")).to_have_text("awaiting_review")
    await expect(page.locator("#runs tbody tr")).to_have_count(1)
    await expect(listed).to_contain_text("2/2")
    await expect(listed.locator("a[data-project-id]")).to_have_text("Harbour")
    await screenshot(page, "studio-runs")
    await page.get_by_role("tab", name="Completed").click()
    await expect(page.locator("#runs tbody tr")).to_have_count(0)

    # Reject: the run fails; retry reruns the rejected gate; approve: it completes.
    await page.goto(f"{server.url}/ui/runs/{run_id}")
    await expect(page.locator("#run-approve")).to_be_visible()
    await screenshot(page, "studio-run-review")
    await page.fill("#run-comment", "the seam jumps")
    await page.get_by_role("button", name="Reject").click()
    await expect(page.locator("#run-status")).to_have_text("failed", timeout=30000)
    await expect(page.locator("#run-error")).to_contain_text("seam_gate")
    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator("#run-status")).to_have_text("awaiting_review", timeout=60000)
    await page.fill("#run-comment", "good enough")
    await page.get_by_role("button", name="Approve").click()
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=30000)
    await expect(page.locator("#run-outputs video")).to_have_count(1)
    await expect(page.locator("#run-project")).to_have_text("Harbour")

    async with server.client() as client:
        run = await run_of(client, run_id)
    assert run["status"] == "completed" and run["params"]["review"] == "manual"
    reviews = [
        entry
        for entry in {s["name"]: s for s in run["steps"]}["seam_gate"]["scores"]
        if "review" in entry
    ]
    assert [(r["review"], r["comment"]) for r in reviews] == [
        ("rejected", "the seam jumps"),
        ("approved", "good enough"),
    ]

    # Cancel a run while its steps are on the backend; it can then be retried.
    async with server.client() as client:
        started = await client.post(
            f"/api/v1/projects/{project_id}/generate",
            json={
                "prompt": "a long one",
                "duration": 2,
                "segments": 2,
                "steps": 100,
                "width": 64,
                "height": 64,
                "review": "none",
            },
        )
        assert started.status_code == 202, started.text
    long_id = started.json()["id"]
    await page.goto(f"{server.url}/ui/runs/{long_id}")
    await expect(page.locator("#run-status")).to_have_text("running")
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=30000)
    await expect(page.locator("#run-retry")).to_be_visible()
    await expect(page.locator("#run-cancel")).to_be_hidden()
    async with server.client() as client:
        run = await run_of(client, long_id)
        jobs = [job for step in run["steps"] for job in step["jobs"]]
        for job_id in jobs:
            job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            assert job["status"] in ("cancelled", "completed"), job
    assert run["status"] == "cancelled"
    assert errors == []
