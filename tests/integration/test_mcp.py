"""The MCP server through the official `mcp` client library, over both transports:
streamable HTTP at /mcp of a real server, and stdio with `atelier mcp` as a subprocess.
Each lists the tools, submits a job and gets its image."""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from atelier.client import AsyncAtelier
from atelier.testing import ThreadedFakeComfyUI
from tests.graphs import sampler_graph
from tests.team import make_key

TOOLS = {"list_workflows", "submit_workflow", "get_job", "wait_for_job", "get_outputs"}


@asynccontextmanager
async def http_client(url: str, key: str) -> AsyncIterator[Client]:
    """An MCP client of url/mcp over streamable HTTP, sending the API key."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url + "/mcp", http_client=http)) as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def make_image(server_url: str, key: str) -> str:
    """An uploaded photo's artifact id (the SDK's upload)."""
    data = io.BytesIO()
    Image.new("RGB", (48, 32), (255, 0, 0)).save(data, "PNG")
    async with AsyncAtelier(server_url, api_key=key) as atelier:
        return (await atelier.upload(data.getvalue(), filename="red.png")).id


async def list_submit_and_see(client: Client, image_id: str) -> None:
    """What an assistant does: find a workflow, run it, wait, look at the picture."""
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} >= TOOLS
    submit_tool = next(t for t in tools.tools if t.name == "submit_workflow")
    assert "workflow" in submit_tool.input_schema["properties"]

    listed = await client.call_tool("list_workflows", {})
    assert not listed.is_error, text_of(listed)
    workflows = {w["name"]: w for w in listed.structured_content["result"]}
    assert workflows["invert"]["parameters"]["image"]["required"] is True
    assert workflows["resize"]["parameters"]["width"]["type"] == "integer"

    submitted = await client.call_tool(
        "submit_workflow", {"workflow": "invert", "params": {"image": image_id}}
    )
    assert not submitted.is_error, text_of(submitted)
    job_id = submitted.structured_content["id"]
    waited = await client.call_tool("wait_for_job", {"job_id": job_id, "timeout_seconds": 60})
    assert waited.structured_content["status"] == "completed", text_of(waited)
    got = await client.call_tool("get_job", {"job_id": job_id})
    assert got.structured_content["outputs"][0]["kind"] == "image"

    outputs = await client.call_tool("get_outputs", {"job_id": job_id})
    assert not outputs.is_error, text_of(outputs)
    [image] = [c for c in outputs.content if isinstance(c, ImageContent)]
    assert image.mime_type == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(image.data))) as picture:
        assert picture.size == (48, 32)
        assert picture.convert("RGB").getpixel((3, 3)) == (0, 255, 255)  # red, inverted

    bad = await client.call_tool(
        "submit_workflow", {"workflow": "resize", "params": {"image": image_id, "width": "x"}}
    )
    assert bad.is_error and "width" in text_of(bad)
    unknown = await client.call_tool("get_job", {"job_id": "no-such-job"})
    assert unknown.is_error and "404" in text_of(unknown)


async def test_streamable_http_with_api_keys(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", [fake.url])
    async with server.client() as http:
        admin = await make_key(http, "ops", "admin")
        alice = await make_key(http, "alice", "submit", admin_key=admin)
        reader = await make_key(http, "bob", "read", admin_key=admin)
        refused = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/unauthorized")

    image_id = await make_image(server.url, alice)
    async with http_client(server.url, alice) as client:
        await list_submit_and_see(client, image_id)

        fake.fake.set_timing(step_time=0.2)
        async with AsyncAtelier(server.url, api_key=alice) as atelier:
            long_job = await atelier.submit(sampler_graph(steps=300))
            waited = await client.call_tool(
                "wait_for_job", {"job_id": long_job.id, "timeout_seconds": 1}
            )
            assert waited.structured_content["status"] in ("queued", "running")
            await atelier.cancel(long_job.id)
            assert (await atelier.wait(long_job.id, timeout=30)).status == "cancelled"

    async with http_client(server.url, reader) as client:
        # bob may read, not submit, and does not see alice's upload or jobs
        denied = await client.call_tool(
            "submit_workflow", {"workflow": "invert", "params": {"image": image_id}}
        )
        assert denied.is_error and "submit" in text_of(denied)
        async with AsyncAtelier(server.url, api_key=alice) as atelier:
            alices_job = (await atelier.jobs(status="completed")).items[0]
        hidden = await client.call_tool("get_job", {"job_id": alices_job.id})
        assert hidden.is_error and "404" in text_of(hidden)

    async with server.client(headers={"Authorization": "Bearer atk_wrong"}) as http:
        wrong = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]


async def test_stdio_subprocess_against_a_real_server(
    server_factory: Any, fake: ThreadedFakeComfyUI, tmp_path: Path
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", [fake.url])
    async with server.client() as http:
        key = await make_key(http, "ops", "admin")
    image_id = await make_image(server.url, key)
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "atelier", "mcp", "--url", server.url],
        env={**os.environ, "ATELIER_API_KEY": key},
    )
    async with Client(parameters, read_timeout_seconds=60) as client:
        await list_submit_and_see(client, image_id)


async def test_studio_generate_and_get_run(server_factory: Any, tmp_path: Path) -> None:
    """An assistant makes a short video in a project and follows the run to its file."""
    from tests.workflow_support import BUILTIN_MODELS

    with ThreadedFakeComfyUI(
        root_dir=tmp_path / "comfy", name="gpu", models=BUILTIN_MODELS, step_time=0.002
    ) as studio_fake:
        server = await server_factory(
            f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}",
            [f"gpu={studio_fake.url}"],
            studio_resync_interval=0.5,
        )
        async with server.client() as http:
            key = await make_key(http, "ops", "admin")
        async with AsyncAtelier(server.url, api_key=key) as atelier:
            defaults = {"width": 64, "height": 64, "quality": "fast_preview"}
            project = await atelier.create_project("Moonlit", defaults=defaults)
            await atelier.create_character(project.id, "Aiko", prompt_fragment="aiko, 1girl")

        async with http_client(server.url, key) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"generate", "get_run"} <= set(tools)
            assert {"project", "prompt", "character", "duration"} <= set(
                tools["generate"].input_schema["properties"]
            )
            started = await client.call_tool(
                "generate",
                {
                    "project": project.id,
                    "prompt": "under the moon",
                    "character": "Aiko",
                    "duration": 6,  # over 5 s: a video by segments
                },
            )
            assert not started.is_error, text_of(started)
            run = started.structured_content
            assert run["status"] == "running" and run["project_id"] == project.id
            got = await client.call_tool("get_run", {"run_id": run["id"], "wait_seconds": 120})
            assert not got.is_error, text_of(got)
            ended = got.structured_content
            if ended["status"] == "awaiting_review":  # a gate scored the test frames low
                assert "approve" in ended["note"]
                async with AsyncAtelier(server.url, api_key=key) as atelier:
                    await atelier.approve_run(run["id"])
                got = await client.call_tool("get_run", {"run_id": run["id"], "wait_seconds": 120})
                ended = got.structured_content
            assert ended["status"] == "completed", ended
            segments = ended["segments"]
            assert segments["total"] >= 2 and segments["completed"] == segments["total"]
            [output] = ended["outputs"]
            assert output["kind"] == "video" and output["filename"].endswith(".mp4")
            now = await client.call_tool("get_run", {"run_id": run["id"]})
            assert now.structured_content["outputs"] == ended["outputs"]

            unknown_character = await client.call_tool(
                "generate", {"project": project.id, "prompt": "x", "character": "Nobody"}
            )
            assert unknown_character.is_error and "Nobody" in text_of(unknown_character)
            missing = await client.call_tool("get_run", {"run_id": "no-such-run"})
            assert missing.is_error and "404" in text_of(missing)
        async with AsyncAtelier(server.url, api_key=key) as atelier:
            data = await atelier.download(output["url"])
        assert data[4:8] == b"ftyp"  # an MP4
