"""Projects, the bible and characters over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.studio_support import make_character, make_project, reference_png
from tests.workflow_support import problem


@pytest.fixture
async def client(server_factory: Any, database_url: str, fake: Any) -> Any:
    server = await server_factory(database_url, [f"a={fake.url}"])
    async with server.client() as http:
        yield http


async def test_project_lifecycle_with_cursor_pages(client: Any) -> None:
    made = [await make_project(client, name=f"p{i}", labels={"team": "x"}) for i in range(3)]
    assert made[0]["status"] == "draft" and made[0]["published"] is False
    first = (await client.get("/api/v1/projects", params={"limit": 2})).json()
    assert [p["name"] for p in first["items"]] == ["p2", "p1"]
    rest = (
        await client.get("/api/v1/projects", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [p["name"] for p in rest["items"]] == ["p0"] and rest["next_cursor"] is None

    project_id = made[0]["id"]
    patched = await client.patch(
        f"/api/v1/projects/{project_id}",
        json={"description": "a night story", "status": "active", "defaults": {"fps": 12}},
    )
    assert patched.status_code == 200, patched.text
    again = await client.patch(
        f"/api/v1/projects/{project_id}", json={"defaults": {"quality": "fast_preview"}}
    )
    defaults = {k: v for k, v in again.json()["defaults"].items() if v is not None}
    assert defaults == {"fps": 12, "quality": "fast_preview"}  # merged
    assert again.json()["description"] == "a night story"

    archived = await client.post(f"/api/v1/projects/{project_id}/archive")
    assert archived.json()["status"] == "archived"
    listed = (await client.get("/api/v1/projects", params={"status": "archived"})).json()
    assert [p["id"] for p in listed["items"]] == [project_id]
    problem(
        await client.post(f"/api/v1/projects/{project_id}/characters", json={"name": "X"}),
        409,
        "project-archived",
    )

    assert (await client.delete(f"/api/v1/projects/{project_id}")).status_code == 204
    problem(await client.get(f"/api/v1/projects/{project_id}"), 404, "project-not-found")


async def test_bad_project_input_names_the_field_and_changes_nothing(client: Any) -> None:
    body = problem(
        await client.post("/api/v1/projects", json={"name": ""}), 422, "validation-failed"
    )
    assert body["errors"][0]["field"].endswith("name")
    project = await make_project(client)
    body = problem(
        await client.patch(f"/api/v1/projects/{project['id']}", json={"status": "gone"}),
        422,
        "validation-failed",
    )
    assert "status" in body["errors"][0]["field"]
    problem(await client.get("/api/v1/projects", params={"cursor": "nope"}), 400, "invalid-request")
    problem(await client.get("/api/v1/projects", params={"status": "x"}), 400, "invalid-request")
    assert (await client.get(f"/api/v1/projects/{project['id']}")).json() == project


async def test_bible_is_read_replaced_and_patched(client: Any) -> None:
    project = await make_project(client)
    url = f"/api/v1/projects/{project['id']}/bible"
    assert (await client.get(url)).json()["title"] == "Moonlit"
    bible = {
        "title": "Moonlit",
        "description": "A city of lanterns.",
        "style": {
            "style_prompt": "anime, soft light",
            "negative_prompt": "blurry",
            "palette": ["#102040", "#f0c0a0"],
            "extra": {"lens": "35mm"},
        },
        "world": {"era": "1920s", "places": ["harbour"]},
    }
    put = await client.put(url, json=bible)
    assert put.status_code == 200, put.text
    assert put.json()["style"] == bible["style"]
    patched = (await client.patch(url, json={"world": {"era": "future"}})).json()
    assert patched["world"] == {"era": "future"} and patched["style"] == bible["style"]
    problem(await client.patch(url, json={"style": {"nope": 1}}), 422, "validation-failed")
    assert (await client.get(url)).json()["world"] == {"era": "future"}


async def test_characters_with_reference_images(client: Any) -> None:
    project = await make_project(client)
    base = f"/api/v1/projects/{project['id']}/characters"
    aiko = await make_character(
        client,
        project["id"],
        visual_traits={"hair": "silver"},
        personality={"calm": True},
        lora="aiko.safetensors:0.8",
        seed=7,
    )
    assert len(aiko["references"]) == 1
    ref = aiko["references"][0]
    picture = await client.get(ref["url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert (ref["width"], ref["height"]) == (64, 64)

    # An earlier output (here an upload) by id; by name in the URL works too.
    upload = await client.post(
        "/api/v1/uploads",
        files={"file": ("r.png", __import__("base64").b64decode(reference_png()))},
    )
    more = await client.post(f"{base}/Aiko/references", json={"artifact": upload.json()["id"]})
    assert more.status_code == 201 and len(more.json()["references"]) == 2
    problem(await client.post(f"{base}/Aiko/references", json={}), 422, "validation-failed")
    problem(
        await client.post(f"{base}/Aiko/references", json={"artifact": "missing"}),
        422,
        "validation-failed",
    )
    problem(
        await client.post(f"{base}/Aiko/references", json={"base64": "bm90IGFuIGltYWdl"}),
        422,
        "validation-failed",
    )
    removed = await client.delete(f"{base}/Aiko/references/{ref['artifact_id']}")
    kept = removed.json()["references"]
    # The character keeps its own copy of the upload (deleting the upload keeps it).
    assert len(kept) == 1 and kept[0]["artifact_id"] == more.json()["references"][1]["artifact_id"]

    problem(await client.post(base, json={"name": "Aiko"}), 409, "character-exists")
    problem(
        await client.post(base, json={"name": "B", "lora": "no-weight"}), 422, "validation-failed"
    )
    renamed = await client.patch(f"{base}/{aiko['id']}", json={"name": "Aiko Mori"})
    assert renamed.json()["name"] == "Aiko Mori" and renamed.json()["seed"] == 7
    listed = (await client.get(base)).json()["items"]
    assert [c["name"] for c in listed] == ["Aiko Mori"]
    assert (await client.delete(f"{base}/Aiko Mori")).status_code == 204
    problem(await client.get(f"{base}/{aiko['id']}"), 404, "character-not-found")
