"""Media inputs: uploads, base64, data: URIs, URLs (private ones refused, an allowlisted
loopback server fetched), chaining an output into a new job, and uploads to the backend
deduplicated by hash."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.workflow_support import WAIT, b64png, image_of, png, problem, run


def wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


@pytest.fixture
async def files() -> AsyncIterator[str]:
    """A plain HTTP server on 127.0.0.1 serving test files."""
    app = web.Application()

    async def picture(request: web.Request) -> web.Response:
        return web.Response(body=png((0, 128, 255), (40, 20)), content_type="image/png")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/picture.png")

    async def big(request: web.Request) -> web.Response:
        return web.Response(
            body=png((1, 2, 3), (800, 800)) + b"\0" * 50_000, content_type="image/png"
        )

    app.router.add_get("/picture.png", picture)
    app.router.add_get("/moved", moved)
    app.router.add_get("/big.png", big)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_uploads_and_inline_inputs(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", [f"a={fake.url}"])
    async with server.client() as client:
        response = await client.post(
            "/api/v1/uploads", files={"file": ("photo.bin", png((10, 10, 10)), "text/plain")}
        )
        assert response.status_code == 201, response.text
        upload = response.json()
        assert (upload["kind"], upload["content_type"]) == ("image", "image/png")  # sniffed
        assert (upload["width"], upload["height"], upload["filename"]) == (32, 24, "photo.png")
        assert response.headers["location"] == f"/api/v1/artifacts/{upload['id']}"
        job = await run(client, "invert", {"image": upload["id"]})
        assert (await image_of(client, job["outputs"][0])).convert("RGB").getpixel((0, 0)) == (
            245,
            245,
            245,
        )
        job = await run(client, "invert", {"image": {"base64": b64png((0, 0, 0))}})
        assert job["params"]["image"] != upload["id"]  # the job's own input artifact
        # Text that looks like an artifact reference is only text: nothing is uploaded.
        before = sorted((fake.root_dir / "input" / "atelier").iterdir())
        prompt = f"@artifact:{upload['id']}"
        job = await run(
            client, "txt2img_sd15", {"prompt": prompt, "width": 64, "height": 64, "steps": 1}
        )
        assert job["params"]["prompt"] == prompt
        assert sorted((fake.root_dir / "input" / "atelier").iterdir()) == before

        body = problem(
            await client.post(
                "/api/v1/uploads", files={"file": ("a.png", b"not an image", "image/png")}
            ),
            422,
            "validation-failed",
        )
        assert body["errors"][0]["field"] == "file"
        sound = (
            await client.post("/api/v1/uploads", files={"file": ("a.wav", wav(), "audio/wav")})
        ).json()
        assert sound["kind"] == "audio"
        body = problem(
            await client.post("/api/v1/workflows/invert/jobs", json={"image": sound["id"]}),
            422,
            "validation-failed",
        )
        assert body["errors"] == [
            {"field": "image", "reason": "expects an image, but this input is audio/wav"}
        ]
        body = problem(
            await client.post("/api/v1/workflows/invert/jobs", json={"image": "aGVsbG8gd29ybGQ="}),
            422,
            "validation-failed",
        )
        assert body["errors"][0]["field"] == "image"
        body = problem(
            await client.post(
                "/api/v1/workflows/invert/jobs",
                json={"image": "00000000-0000-0000-0000-000000000000"},
            ),
            422,
            "validation-failed",
        )
        assert "no artifact" in body["errors"][0]["reason"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/picture.png",
        "http://localhost/picture.png",
        "http://10.0.0.7/picture.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/picture.png",
    ],
)
async def test_urls_to_private_addresses_are_refused(
    server_factory: Any, fake: Any, tmp_path: Path, url: str
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}", [f"a={fake.url}"])
    async with server.client() as client:
        body = problem(
            await client.post("/api/v1/workflows/invert/jobs", json={"image": url}),
            400,
            "url-not-allowed",
        )
        assert body["errors"][0]["field"] == "image"
        assert (await client.get("/api/v1/jobs")).json()["items"] == []


async def test_url_from_an_allowlisted_loopback_server(
    server_factory: Any, fake: Any, tmp_path: Path, files: str
) -> None:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        [f"a={fake.url}"],
        url_allowlist=["127.0.0.1"],
        input_max_bytes=20_000,
    )
    async with server.client() as client:
        job = await run(client, "invert", {"image": f"{files}/picture.png"})
        image = await image_of(client, job["outputs"][0])
        assert image.size == (40, 20) and image.convert("RGB").getpixel((2, 2)) == (255, 127, 0)
        job = await run(
            client, "resize", {"image": {"url": f"{files}/moved"}, "width": 8, "height": 4}
        )
        assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (8, 4)
        body = problem(
            await client.post(
                "/api/v1/workflows/invert/jobs", json={"image": f"{files}/missing.png"}
            ),
            422,
            "input-unavailable",
        )
        assert body["retryable"] is True and "404" in body["detail"]
        problem(
            await client.post("/api/v1/workflows/invert/jobs", json={"image": f"{files}/big.png"}),
            413,
            "request-too-large",
        )


async def test_an_output_feeds_the_next_job_and_uploads_are_deduplicated(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", [f"a={fake.url}"])
    async with server.client() as client:
        first = await run(client, "invert", {"image": b64png((200, 10, 60))})
        (output,) = first["outputs"]
        second = await run(client, "invert", {"image": output["id"]})
        image = await image_of(client, second["outputs"][0])
        assert image.convert("RGB").getpixel((5, 5)) == (200, 10, 60)  # inverted twice
        # The first job can go; the second one's input file stays.
        assert (await client.delete(f"/api/v1/jobs/{first['id']}")).status_code == 204
        third = await run(client, "blur", {"image": second["params"]["image"]})
        assert third["outputs"]

        uploaded = fake.root_dir / "input" / "atelier"
        before = sorted(p.name for p in uploaded.iterdir())
        await run(client, "invert", {"image": b64png((200, 10, 60))})  # the same bytes again
        assert sorted(p.name for p in uploaded.iterdir()) == before
        for path in uploaded.iterdir():  # the backend lost its inputs: they are sent again
            path.unlink()
        await run(client, "invert", {"image": b64png((200, 10, 60))})
        assert len(list(uploaded.iterdir())) == 1

        # Raw graphs can name an artifact too.
        kept = second["outputs"][0]["id"]
        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": f"@artifact:{kept}"}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {
                "class_type": "SaveImage",
                "inputs": {"images": ["2", 0], "filename_prefix": "raw"},
            },
        }
        response = await client.post("/api/v1/jobs", json={"graph": graph}, headers=WAIT)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed", response.json()["error"]
        graph["1"]["inputs"]["image"] = "@artifact:00000000-0000-0000-0000-000000000000"
        body = problem(
            await client.post("/api/v1/jobs", json={"graph": graph}), 422, "validation-failed"
        )
        assert body["errors"][0]["field"] == "graph.1.image"
