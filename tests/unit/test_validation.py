import json
from pathlib import Path

import pytest

from atelier.errors import GraphInvalid
from atelier.workflows.validation import check_against_schemas, check_structure
from tests.graphs import animated_graph, image_graph, sampler_graph

OBJECT_INFO = json.loads(
    (Path(__file__).parents[2] / "src/atelier/testing/data/object_info.json").read_text()
)
SCHEMAS = [OBJECT_INFO]


def test_good_graphs_pass() -> None:
    for graph in (
        image_graph(),
        animated_graph(),
        sampler_graph(checkpoint="tiny-sd15-random.safetensors"),
    ):
        check_against_schemas(check_structure(graph, max_nodes=100), SCHEMAS)


def test_integer_links_are_normalised_to_string_ids() -> None:
    graph = image_graph()
    graph["2"]["inputs"]["image"] = [1, 0]
    assert check_structure(graph, max_nodes=10)["2"]["inputs"]["image"] == ["1", 0]


@pytest.mark.parametrize(
    ("mutate", "node", "name", "reason"),
    [
        (lambda g: g["1"]["inputs"].update(width=0), "1", "width", "0 is below the minimum 1"),
        (
            lambda g: g["1"]["inputs"].update(width="wide"),
            "1",
            "width",
            "expects an integer, got str",
        ),
        (lambda g: g["1"]["inputs"].update(width=1.5), "1", "width", "expects an integer, got 1.5"),
        (
            lambda g: g["1"]["inputs"].update(width=True),
            "1",
            "width",
            "expects an integer, got bool",
        ),
        (
            lambda g: g["3"]["inputs"].update(filename_prefix=7),
            "3",
            "filename_prefix",
            "expects a string, got int",
        ),
        (
            lambda g: g["2"]["inputs"].update(image=["1", 3]),
            "2",
            "image",
            "node 1 (EmptyImage) has no output 3",
        ),
        (lambda g: g["1"]["inputs"].pop("height"), "1", "height", "required input is missing"),
    ],
)
def test_problems_name_node_input_and_reason(mutate, node, name, reason) -> None:  # type: ignore[no-untyped-def]
    graph = image_graph()
    mutate(graph)
    with pytest.raises(GraphInvalid) as caught:
        check_against_schemas(check_structure(graph, max_nodes=10), SCHEMAS)
    assert {"node_id": node, "input": name, "reason": reason} == {
        k: caught.value.errors[0][k] for k in ("node_id", "input", "reason")
    }


def test_upload_combos_are_left_to_comfyui() -> None:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "uploaded-later.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    check_against_schemas(check_structure(graph, max_nodes=10), SCHEMAS)


def test_no_schemas_means_structure_only() -> None:
    graph = image_graph()
    graph["2"]["class_type"] = "Whatever"
    check_against_schemas(check_structure(graph, max_nodes=10), [])
