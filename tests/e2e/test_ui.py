"""The web UI in a real Chromium against a real server, a real database and the fake
ComfyUI on real sockets: a person's clicks, and what they then see."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect

from atelier.testing import ThreadedFakeComfyUI
from tests.e2e.browser import open_browser, screenshot
from tests.graphs import animated_graph, image_graph, sampler_graph
from tests.helpers import job_reaches, submit
from tests.team import auth, make_key


@pytest.fixture
def slow_fake(tmp_path: Path) -> Iterator[ThreadedFakeComfyUI]:
    """A backend whose sampler steps take 0.1 s, so a person (and the test) can watch."""
    with ThreadedFakeComfyUI(root_dir=tmp_path / "comfy", name="gpu-1", step_time=0.1) as fake:
        yield fake


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async for opened in open_browser():
        yield opened


@pytest.fixture
async def server(server_factory: Any, slow_fake: ThreadedFakeComfyUI, tmp_path: Path) -> Any:
    return await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}", [f"gpu-1={slow_fake.url}"]
    )


async def new_page(browser: Browser, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def video_graph(frames: int = 6) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x2288CC},
        },
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": frames}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 6.0}},
        "4": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["3", 0],
                "filename_prefix": "clip",
                "format": "mp4",
                "codec": "h264",
            },
        },
    }


async def test_submit_from_the_form_then_watch_the_bar_reach_100_and_the_image(
    server: Any, browser: Browser
) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{server.url}/ui/submit")
    await page.get_by_role("button", name="txt2img_sd15").click()
    await expect(page.locator("#f-prompt")).to_have_value(
        "a lighthouse on a cliff at dusk, dramatic sky, detailed, cinematic light"
    )
    # The form comes from the schema: ranges, choices, a random seed.
    await expect(page.locator("#f-steps")).to_have_attribute("max", "150")
    await expect(page.locator("#f-sampler option")).not_to_have_count(0)
    await expect(page.locator("#f-seed-random")).to_be_checked()
    await page.fill("#f-prompt", "a red fox in the snow")
    await page.fill("#f-steps", "30")
    await screenshot(page, "submit")
    await page.get_by_role("button", name="Run").click()

    await page.wait_for_url("**/ui/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    seen: set[int] = set()
    bar = page.locator("#job-progress")
    for _ in range(400):
        value = await bar.get_attribute("aria-valuenow")
        if value is not None:
            seen.add(int(value))
        if value == "100":
            break
        await page.wait_for_timeout(25)
    assert 100 in seen, seen
    assert any(0 < value < 100 for value in seen), f"the bar never moved in between: {seen}"
    image = page.locator("#job-outputs img")
    await expect(image).to_be_visible()
    await expect(page.locator("#job-status")).to_have_text("completed")
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 512
    await expect(page.locator("#job-params")).to_contain_text("a red fox in the snow")
    await expect(page.locator("#job-events")).to_contain_text("completed")
    await expect(page.locator("#job-attempts")).to_contain_text("gpu-1")
    await screenshot(page, "job")

    async with server.client() as client:
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "completed" and job["params"]["prompt"] == "a red fox in the snow"
    assert job["params"]["steps"] == 30 and job["params"]["seed"] >= 0  # drawn by the server
    assert errors == []


async def test_the_queue_follows_a_job_live_and_cancels_it(server: Any, browser: Browser) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{server.url}/ui/")
    await expect(page.locator("#live")).to_have_text("live")
    async with server.client() as client:
        done = await submit(client, image_graph())
        await job_reaches(client, done["id"], "completed")
        long = await submit(client, sampler_graph(steps=300))  # 30 s unless cancelled
        row = page.locator(f'tr[data-job-id="{long["id"]}"]')
        await expect(row).to_have_attribute("data-status", "running", timeout=15000)
        await expect(row.locator(".now")).to_contain_text("KSampler")
        await expect(row.locator(".progress")).not_to_have_attribute("aria-valuenow", "0")
        await expect(page.locator(f'tr[data-job-id="{done["id"]}"] .badge')).to_have_text(
            "completed"
        )
        await screenshot(page, "queue")
        await row.get_by_role("button", name="Cancel").click()
        await expect(row).to_have_attribute("data-status", "cancelled", timeout=15000)
        assert (await job_reaches(client, long["id"], "cancelled"))["status"] == "cancelled"
        await row.get_by_role("button", name="Retry").click()
        await expect(row).not_to_have_attribute("data-status", "cancelled")
        await page.get_by_role("button", name="Completed").click()
        await expect(page.locator("#jobs tbody tr")).to_have_count(1)
        await expect(page.locator(f'tr[data-job-id="{done["id"]}"]')).to_be_visible()
        await page.get_by_role("button", name="Active").click()
        await expect(page.locator(f'tr[data-job-id="{long["id"]}"]')).to_be_visible()
        await expect(page.locator("#jobs tbody tr")).to_have_count(1)
        await client.post(f"/api/v1/jobs/{long['id']}/cancel")
    assert errors == []


async def test_gallery_shows_outputs_as_what_they_are_and_filters(
    server: Any, browser: Browser
) -> None:
    async with server.client() as client:
        jobs = [
            await submit(client, sampler_graph(steps=2, size=128)),
            await submit(client, animated_graph()),
            await submit(client, video_graph()),
        ]
        for job in jobs:
            await job_reaches(client, job["id"], "completed")
        first = (await job_reaches(client, jobs[0]["id"], "completed"))["outputs"][0]
        blurred = await client.post("/api/v1/workflows/blur/jobs", json={"image": first["id"]})
        await job_reaches(client, blurred.json()["id"], "completed")
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{server.url}/ui/gallery")
    tiles = page.locator(".tile")
    await expect(tiles).to_have_count(4)
    await expect(page.locator(".tile video")).to_have_count(1)
    await expect(page.locator(".tile img")).to_have_count(3)
    for image in await page.locator(".tile img").all():
        await expect(image).to_have_js_property("complete", True)
        assert await image.evaluate("img => img.naturalWidth") > 0
    await screenshot(page, "gallery")

    await page.select_option("#filter-kind", "video")
    await expect(tiles).to_have_count(1)
    await expect(page.locator(".tile video")).to_have_count(1)
    await page.select_option("#filter-kind", "")
    await page.select_option("#filter-workflow", "blur")
    await expect(tiles).to_have_count(1)
    await expect(tiles.first).to_contain_text("blur")
    await page.select_option("#filter-workflow", "invert")
    await expect(page.locator("#gallery-empty")).to_be_visible()
    await expect(tiles).to_have_count(0)

    # An output's own page plays the video and offers the download.
    await page.goto(f"{server.url}/ui/jobs/{jobs[2]['id']}")
    video = page.locator("#job-outputs video")
    await expect(video).to_be_visible()
    await expect(video).to_have_attribute("controls", "")
    await page.wait_for_function(
        "() => document.querySelector('#job-outputs video').readyState >= 1"
    )
    link = page.locator("#job-outputs a", has_text="Download")
    async with httpx.AsyncClient() as raw:
        download = await raw.get(await link.get_attribute("href") or "")
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    assert errors == []


async def test_backends_page(server: Any, browser: Browser, slow_fake: ThreadedFakeComfyUI) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    async with server.client() as client:
        running = await submit(client, sampler_graph(steps=100))
        await job_reaches(client, running["id"], "running")
        await page.goto(f"{server.url}/ui/backends")
        card = page.locator('[data-backend="gpu-1"]')
        await expect(card.locator(".badge")).to_have_text("up")
        await expect(card).to_contain_text("free of 24.0 GB")
        await expect(card.locator(".meter")).to_have_attribute("aria-valuemax", str(24 * 1024**3))
        current = card.locator(f'a[href="/ui/jobs/{running["id"]}"]')
        await expect(current).to_have_text(running["id"][:8])
        await expect(card).to_contain_text("1 of 2 slots")
        await screenshot(page, "backends")
        await client.post(f"/api/v1/jobs/{running['id']}/cancel")
    assert errors == []


async def test_sign_in_with_a_key_when_keys_exist(server: Any, browser: Browser) -> None:
    async with server.client() as client:
        admin = await make_key(client, "ops", "admin")
        alice = await make_key(client, "alice", "submit", admin_key=admin)
        theirs = (
            await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(admin))
        ).json()
        mine = (
            await client.post("/api/v1/jobs", json={"graph": image_graph()}, headers=auth(alice))
        ).json()
        anonymous = await client.get("/api/v1/jobs")
    assert anonymous.status_code == 401  # keys exist: nothing works without one

    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{server.url}/ui/gallery")
    await page.wait_for_url("**/ui/login?next=*")
    await screenshot(page, "login")
    await page.fill("#key", "atk_not_a_real_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("not valid")

    await page.fill("#key", alice)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/ui/gallery")
    await expect(page.locator("#who")).to_contain_text(f"key …{alice[-4:]}")
    await page.goto(f"{server.url}/ui/")
    await expect(page.locator(f'tr[data-job-id="{mine["id"]}"]')).to_be_visible()
    await expect(page.locator(f'tr[data-job-id="{theirs["id"]}"]')).to_have_count(0)
    await expect(page.locator("#live")).to_have_text("live")  # the stream took the key too
    assert await page.evaluate("() => sessionStorage.getItem('atelier.apiKey')") == alice

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/ui/login?next=*")
    assert await page.evaluate("() => sessionStorage.getItem('atelier.apiKey')") is None
    assert errors == []


async def test_image_inputs_by_upload_earlier_output_and_url(
    server: Any, browser: Browser, tmp_path: Path
) -> None:
    async with server.client() as client:
        earlier = await submit(client, image_graph(size=96))
        earlier = await job_reaches(client, earlier["id"], "completed")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (80, 40), (200, 40, 40)).save(photo)
    errors: list[str] = []
    page = await new_page(browser, errors)

    async def run_blur(choose: Any) -> dict[str, Any]:
        await page.goto(f"{server.url}/ui/submit?workflow=blur")
        await expect(page.locator("#workflow-name")).to_have_text("blur")
        await choose()
        await page.get_by_role("button", name="Run").click()
        await page.wait_for_url("**/ui/jobs/*")
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=20000)
        await expect(page.locator("#job-outputs img")).to_be_visible()
        async with server.client() as client:
            return await job_reaches(client, page.url.rsplit("/", 1)[1], "completed")

    async def upload() -> None:
        await page.set_input_files("#f-image", str(photo))
        await expect(page.locator('[data-field="image"]')).to_contain_text("uploaded (80\u00d740)")

    job = await run_blur(upload)
    assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (80, 40)

    async def pick_earlier() -> None:
        await page.get_by_role("button", name="Earlier output").click()
        await page.locator(f'[data-artifact-id="{earlier["outputs"][0]["id"]}"]').click()
        await screenshot(page, "submit-image-input")

    job = await run_blur(pick_earlier)
    assert job["outputs"][0]["width"] == 96
    async with server.client() as client:  # the input is a copy of that output
        used = await client.get(f"/api/v1/artifacts/{job['params']['image']}")
        original = await client.get(f"/api/v1/artifacts/{earlier['outputs'][0]['id']}")
    assert used.status_code == 200 and used.content == original.content

    # A URL the server refuses (a private address) is a 422 shown on that field.
    await page.goto(f"{server.url}/ui/submit?workflow=blur")
    await page.get_by_role("button", name="URL").click()
    await page.fill("#f-image-url", "https://127.0.0.1/cat.png")
    await page.get_by_role("button", name="Run").click()
    field = page.locator('[data-field="image"]')
    await expect(field).to_have_class("field invalid")
    await expect(field.locator(".field-error")).not_to_be_empty()
    await expect(page.locator("#submit-error")).to_be_visible()
    assert page.url.endswith("/ui/submit?workflow=blur")
    assert errors == []
