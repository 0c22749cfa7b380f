"""Registering, replacing and deleting templates through the API (versions in the database,
SQLite and PostgreSQL), the templates folder, and the README's own example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.workflow_support import b64png, image_of, problem, run

ROOT = Path(__file__).parents[2]


def readme_example() -> str:
    """The manifest the README shows (the first ```yaml block)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "README has no yaml example"
    return match.group(1)


async def test_register_run_replace_delete(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    server = await server_factory(database_url, [f"a={fake.url}"])
    async with server.client() as client:
        created = await client.post(
            "/api/v1/workflows/negative",
            content=readme_example(),
            headers={"content-type": "application/yaml"},
        )
        assert created.status_code == 201, created.text
        assert created.json() == {"name": "negative", "version": 1, "warnings": []}
        assert created.headers["location"] == "/api/v1/workflows/negative"
        problem(
            await client.post(
                "/api/v1/workflows/negative",
                content=readme_example(),
                headers={"content-type": "application/yaml"},
            ),
            409,
            "workflow-exists",
        )
        document = (await client.get("/openapi.json")).json()
        assert "/api/v1/workflows/negative/jobs" in document["paths"]

        first = await run(
            client, "negative", {"photo": b64png((10, 20, 30), (64, 32)), "width": 32}
        )
        assert (first["workflow"], first["workflow_version"]) == ("negative", 1)
        (output,) = first["outputs"]
        image = await image_of(client, output)
        assert image.size == (32, 16)  # height 0 keeps the aspect ratio
        assert image.convert("RGB").getpixel((4, 4)) == (245, 235, 225)

        changed = yaml.safe_load(readme_example())
        changed["description"] = "Second version"
        replaced = await client.put("/api/v1/workflows/negative", json=changed)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["version"] == 2
        second = await run(client, "negative", {"photo": b64png()})
        assert second["workflow_version"] == 2
        assert (await client.get(f"/api/v1/jobs/{first['id']}")).json()["workflow_version"] == 1
        detail = (await client.get("/api/v1/workflows/negative")).json()
        assert detail["description"] == "Second version" and detail["source"] == "api"
        assert [v["version"] for v in detail["versions"]] == [1, 2]

        assert (await client.delete("/api/v1/workflows/negative")).status_code == 204
        problem(await client.get("/api/v1/workflows/negative"), 404, "workflow-not-found")
        problem(await client.delete("/api/v1/workflows/negative"), 404, "workflow-not-found")
        names = [i["name"] for i in (await client.get("/api/v1/workflows")).json()["items"]]
        assert "negative" not in names
        document = (await client.get("/openapi.json")).json()
        assert "/api/v1/workflows/negative/jobs" not in document["paths"]
        assert (await client.get(f"/api/v1/jobs/{second['id']}")).json()["workflow"] == "negative"
        again = await client.post("/api/v1/workflows/negative", json=changed)
        assert again.status_code == 201 and again.json()["version"] == 4  # 3 was the deletion

        # A built-in can be overridden (a new version) and hidden.
        invert = yaml.safe_load(readme_example())
        override = await client.put("/api/v1/workflows/invert", json=invert)
        assert override.json()["version"] == 2
        detail = (await client.get("/api/v1/workflows/invert")).json()
        assert detail["source"] == "api" and "photo" in detail["schema"]["properties"]
        assert (await client.delete("/api/v1/workflows/invert")).status_code == 204
        problem(await client.get("/api/v1/workflows/invert"), 404, "workflow-not-found")


async def test_a_second_server_on_the_same_database_sees_registrations(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    one = await server_factory(database_url, [f"a={fake.url}"])
    two = await server_factory(database_url, [f"a={fake.url}"])
    async with one.client() as first, two.client() as second:
        response = await first.post(
            "/api/v1/workflows/negative",
            content=readme_example(),
            headers={"content-type": "application/yaml"},
        )
        assert response.status_code == 201
        detail = (await second.get("/api/v1/workflows/negative")).json()
        assert detail["version"] == 1
        job = await run(second, "negative", {"photo": b64png()})
        assert job["workflow_version"] == 1


async def test_bad_manifests_are_refused_with_reasons(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", [f"a={fake.url}"])
    async with server.client() as client:
        good = yaml.safe_load(readme_example())
        cases = [
            (
                {**good, "parameters": [{"name": "photo", "node": "Nowhere"}]},
                "parameters.photo",
                "no node",
            ),
            (
                {**good, "parameters": [{"name": "w", "node": "Thumbnail"}]},
                "parameters.w",
                "several inputs",
            ),
            ({**good, "presets": {"big": {"nope": 1}}}, "presets.big.nope", "no such parameter"),
            (
                {**good, "presets": {"big": {"width": 5000}}},
                "presets.big.width",
                "above the maximum",
            ),
            ({**good, "surprise": 1}, "surprise", "unknown manifest key"),
        ]
        for manifest, field, reason in cases:
            body = problem(
                await client.post("/api/v1/workflows/bad", json=manifest), 422, "workflow-invalid"
            )
            assert body["errors"][0]["field"] == field, body
            assert reason in body["errors"][0]["reason"], body
        broken = json.loads(json.dumps(good))
        broken["graph"]["3"]["inputs"]["image"] = ["1", 1]  # a MASK where an IMAGE goes
        body = problem(
            await client.post("/api/v1/workflows/bad", json=broken), 422, "workflow-invalid"
        )
        assert (
            body["errors"][0]["node_id"] == "3" and "expects IMAGE" in body["errors"][0]["reason"]
        )
        problem(
            await client.post(
                "/api/v1/workflows/bad", content=b"graph: [", headers={"content-type": "text/yaml"}
            ),
            422,
            "workflow-invalid",
        )
        ui = {
            "nodes": [{"id": 1, "type": "NoSuchNode", "mode": 0, "inputs": [], "outputs": []}],
            "links": [],
        }
        body = problem(
            await client.post("/api/v1/workflows/bad", json={"graph": ui}),
            422,
            "workflow-not-convertible",
        )
        assert body["errors"] == [
            {
                "reason": "unknown node type 'NoSuchNode' (no backend has it)",
                "node_id": "1",
                "node_type": "NoSuchNode",
            }
        ]
        custom = json.loads(json.dumps(good))
        custom["graph"]["3"]["class_type"] = "SomeCustomInvert"
        response = await client.post("/api/v1/workflows/custom", json=custom)
        assert response.status_code == 201, response.text
        assert response.json()["warnings"][0]["node_type"] == "SomeCustomInvert"
        body = problem(
            await client.post("/api/v1/workflows/custom/jobs", json={"photo": b64png()}),
            422,
            "capability-missing",
        )
        assert body["missing"]["node_classes"] == ["SomeCustomInvert"]


UI_INVERT = {
    "nodes": [
        {
            "id": 5,
            "type": "LoadImage",
            "mode": 0,
            "title": "Source",
            "inputs": [],
            "outputs": [
                {"name": "IMAGE", "type": "IMAGE", "links": [1]},
                {"name": "MASK", "type": "MASK", "links": []},
            ],
            "widgets_values": ["example.png", "image"],
        },
        {
            "id": 6,
            "type": "ImageInvert",
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
            "widgets_values": [],
        },
        {
            "id": 7,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
            "outputs": [],
            "widgets_values": ["folder"],
        },
        {
            "id": 8,
            "type": "MarkdownNote",
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "widgets_values": ["hi"],
        },
    ],
    "links": [[1, 5, 0, 6, 0, "IMAGE"], [2, 6, 0, 7, 0, "IMAGE"]],
}


async def test_templates_folder_with_a_ui_format_graph(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "atelier" / "workflows"
    folder.mkdir(parents=True)
    (folder / "folder_invert.json").write_text(json.dumps(UI_INVERT))
    (folder / "folder_invert.yaml").write_text(
        "description: From the folder\ngraph: folder_invert.json\nparameters: {picture: Source}\n"
    )
    (folder / "broken.yaml").write_text("graph: missing.json\n")
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", [f"a={fake.url}"])
    async with server.client() as client:
        detail = (await client.get("/api/v1/workflows/folder_invert")).json()
        assert detail["source"] == "folder" and detail["source_format"] == "ui"
        assert sorted(detail["graph"]) == ["5", "6", "7"]
        assert detail["graph"]["7"]["inputs"]["filename_prefix"] == "folder"
        job = await run(client, "folder_invert", {"picture": b64png((0, 0, 0))})
        image = await image_of(client, job["outputs"][0])
        assert image.convert("RGB").getpixel((1, 1)) == (255, 255, 255)
        names = [i["name"] for i in (await client.get("/api/v1/workflows")).json()["items"]]
        assert "broken" not in names
