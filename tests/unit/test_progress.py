import json
from pathlib import Path

from atelier.comfyui.messages import parse_message
from atelier.dispatch.progress import ProgressTracker, needed_nodes
from tests.graphs import image_graph, sampler_graph

OBJECT_INFO = json.loads(
    (Path(__file__).parents[2] / "src/atelier/testing/data/object_info.json").read_text()
)
CAPTURES = Path(__file__).parents[1] / "data" / "captures"


def test_only_nodes_feeding_outputs_count() -> None:
    graph = image_graph()
    graph["9"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
    }
    assert needed_nodes(graph, OBJECT_INFO) == {"1", "2", "3"}
    assert needed_nodes(graph, None) == {"1", "2", "3", "9"}


def test_progress_rises_through_a_captured_run() -> None:
    capture = json.loads((CAPTURES / "two_queued.json").read_text())
    prompt_id = capture["http"][0]["resp"]["prompt_id"]
    graph = capture["http"][0]["req"]["body"]["prompt"]
    tracker = ProgressTracker(graph, OBJECT_INFO)
    seen = []
    for item in capture["ws"]:
        message = parse_message(json.dumps(item["msg"]))
        if getattr(getattr(message, "data", None), "prompt_id", None) != prompt_id:
            continue
        if tracker.feed(message):
            seen.append(tracker.fraction)
    assert seen == sorted(seen)
    assert tracker.to_run == {"2", "3"}  # node 1 was cached
    assert seen[-1] == 0.99  # 1.0 only once outputs are stored


def test_sampler_steps_are_proportional() -> None:
    tracker = ProgressTracker(sampler_graph(steps=10), OBJECT_INFO)
    assert len(tracker.to_run) == 7
    tracker.feed(
        parse_message(json.dumps({"type": "executing", "data": {"node": "3", "prompt_id": "p"}}))
    )
    tracker.feed(
        parse_message(
            json.dumps(
                {"type": "progress", "data": {"value": 5, "max": 10, "node": "3", "prompt_id": "p"}}
            )
        )
    )
    assert tracker.snapshot() == {
        "progress": round(0.5 / 7, 4),
        "node": "3",
        "node_type": "KSampler",
        "step": 5,
        "max": 10,
    }


def test_unknown_messages_never_raise() -> None:
    for raw in [
        "not json",
        "[]",
        '{"type": 5}',
        '{"type": "display_component", "data": {}}',
        b"\x00\x00\x00\x01abc",
        '{"type": "executing", "data": {"node": 3}}',
    ]:
        parse_message(raw)
