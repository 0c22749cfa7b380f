"""Bad input gets a clear problem+json answer and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.graphs import image_graph, sampler_graph

PROBLEM = "application/problem+json"


@pytest.fixture
async def client(server_factory: Any, fake: Any, tmp_path: Any) -> Any:
    server = await server_factory(
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        [fake.url],
        max_body_bytes=64 * 1024,
        max_graph_nodes=50,
    )
    async with server.client() as http:
        yield http
        listing = (await http.get("/api/v1/jobs")).json()
        assert listing["items"] == [], "a rejected request wrote a job"


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://atelier.dev/problems/{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def test_unknown_node_class(client: Any) -> None:
    graph = image_graph()
    graph["2"]["class_type"] = "NoSuchNode"
    body = _problem(await client.post("/api/v1/jobs", json={"graph": graph}), 422, "graph-invalid")
    assert body["errors"][0]["node_id"] == "2"
    assert "NoSuchNode" in body["errors"][0]["reason"]


async def test_value_out_of_range_names_node_and_input(client: Any) -> None:
    graph = sampler_graph(steps=20000)
    body = _problem(await client.post("/api/v1/jobs", json={"graph": graph}), 422, "graph-invalid")
    assert body["errors"] == [
        {
            "node_id": "3",
            "input": "steps",
            "node_type": "KSampler",
            "reason": "20000 is above the maximum 10000",
        }
    ]


async def test_missing_input_and_bad_combo_and_bad_link(client: Any) -> None:
    graph = sampler_graph(checkpoint="nope.safetensors")
    del graph["3"]["inputs"]["cfg"]
    graph["8"]["inputs"]["vae"] = ["4", 0]  # MODEL where a VAE is expected
    body = _problem(await client.post("/api/v1/jobs", json={"graph": graph}), 422, "graph-invalid")
    found = {(e["node_id"], e["input"]): e["reason"] for e in body["errors"]}
    assert "not one of the allowed values" in found[("4", "ckpt_name")]
    assert found[("3", "cfg")] == "required input is missing"
    assert "expects VAE" in found[("8", "vae")]


async def test_link_to_missing_node_and_no_output(client: Any) -> None:
    graph = image_graph()
    graph["2"]["inputs"]["image"] = ["99", 0]
    body = _problem(await client.post("/api/v1/jobs", json={"graph": graph}), 422, "graph-invalid")
    assert body["errors"][0]["node_id"] == "2" and body["errors"][0]["input"] == "image"
    no_output = {"1": image_graph()["1"]}
    body = _problem(
        await client.post("/api/v1/jobs", json={"graph": no_output}), 422, "graph-invalid"
    )
    assert "no output node" in body["detail"]


async def test_malformed_json(client: Any) -> None:
    response = await client.post(
        "/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    _problem(response, 400, "malformed-json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "graph"),
        ({"graph": "not a graph"}, "graph"),
        ({"graph": image_graph(), "priority": "high"}, "priority"),
        ({"graph": image_graph(), "priority": 10**9}, "priority"),
        ({"graph": image_graph(), "labels": {"a": 1}}, "labels.a"),
        ({"graph": image_graph(), "surprise": True}, "surprise"),
    ],
)
async def test_wrong_types_name_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    problem = _problem(await client.post("/api/v1/jobs", json=body), 422, "validation-failed")
    assert field in [e["field"] for e in problem["errors"]]


async def test_empty_graph_and_bad_nodes(client: Any) -> None:
    _problem(await client.post("/api/v1/jobs", json={"graph": {}}), 422, "graph-invalid")
    body = _problem(
        await client.post("/api/v1/jobs", json={"graph": {"1": {"inputs": {}}}}),
        422,
        "graph-invalid",
    )
    assert body["errors"][0]["node_id"] == "1"


async def test_too_large(client: Any) -> None:
    big = {"graph": image_graph(), "metadata": {"blob": "x" * 100_000}}
    _problem(await client.post("/api/v1/jobs", json=big), 413, "request-too-large")
    many = {str(i): {"class_type": "EmptyImage", "inputs": {}} for i in range(60)}
    body = _problem(await client.post("/api/v1/jobs", json={"graph": many}), 422, "graph-invalid")
    assert "limit is 50" in body["detail"]


async def test_unknown_ids_and_routes(client: Any) -> None:
    _problem(await client.get("/api/v1/jobs/does-not-exist"), 404, "job-not-found")
    _problem(await client.post("/api/v1/jobs/does-not-exist/cancel"), 404, "job-not-found")
    _problem(await client.delete("/api/v1/jobs/does-not-exist"), 404, "job-not-found")
    _problem(await client.get("/api/v1/jobs/does-not-exist/events"), 404, "job-not-found")
    _problem(await client.get("/api/v1/artifacts/does-not-exist"), 404, "artifact-not-found")
    _problem(await client.get("/api/v1/nothing-here"), 404, "not-found")
    _problem(await client.put("/api/v1/jobs"), 405, "method-not-allowed")


async def test_bad_list_filters(client: Any) -> None:
    _problem(await client.get("/api/v1/jobs?status=bogus"), 400, "invalid-request")
    _problem(await client.get("/api/v1/jobs?label=nocolon"), 400, "invalid-request")
    _problem(await client.get("/api/v1/jobs?cursor=%%%"), 400, "invalid-request")
    _problem(await client.get("/api/v1/jobs?limit=0"), 422, "validation-failed")
