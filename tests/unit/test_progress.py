import json
from pathlib import Path

from atelier.comfyui.messages import parse_message
from atelier.dispatch.progress import ProgressTracker, learn, needed_nodes
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


def message(kind: str, **data: object) -> object:
    return parse_message(json.dumps({"type": kind, "data": {"prompt_id": "p", **data}}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sampler_steps_carry_the_bar() -> None:
    """Half the steps of a 10-step sampler is most of the way through sampling's share,
    not 1/14 of the bar: sampling is weighted by its expected time."""
    tracker = ProgressTracker(sampler_graph(steps=10), OBJECT_INFO, clock=Clock())
    assert len(tracker.to_run) == 7
    tracker.feed(message("executing", node="3"))
    tracker.feed(message("progress", value=5, max=10, node="3"))
    # 6 ordinary nodes at 0.2 s, 10 steps at 0.5 s: half the steps is 2.5 of 6.2 seconds.
    assert tracker.snapshot() == {
        "progress": round(2.5 / 6.2, 4),
        "node": "3",
        "node_type": "KSampler",
        "stage": "sampling",
        "step": 5,
        "max_steps": 10,
        "max": 10,
        "eta_seconds": None,  # the clock has not moved: nothing to extrapolate from
    }
    tracker.clock.now += 2.0  # type: ignore[attr-defined]
    assert tracker.eta_seconds() == round(2.0 * (1 - 2.5 / 6.2) / (2.5 / 6.2), 1)
    tracker.feed(message("progress", value=10, max=10, node="3"))
    assert tracker.fraction > 0.75


def test_the_bar_moves_through_sampling_not_around_it() -> None:
    tracker = ProgressTracker(sampler_graph(steps=20), OBJECT_INFO)
    fractions = []
    for node in ("4", "6", "7", "5"):
        tracker.feed(message("executing", node=node))
    before = tracker.fraction
    tracker.feed(message("executing", node="3"))
    for step in range(1, 21):
        tracker.feed(message("progress", value=step, max=20, node="3"))
        fractions.append(tracker.fraction)
    tracker.feed(message("executing", node="8"))
    assert before < 0.15  # loaders and prompts are a small part
    assert fractions == sorted(fractions) and fractions[-1] - fractions[0] > 0.8
    assert tracker.stage == "decoding"
    assert (tracker.step, tracker.max) == (20, 20)  # the last step stays


def test_eta_from_what_this_backend_measured() -> None:
    clock = Clock()
    first = ProgressTracker(sampler_graph(steps=10), OBJECT_INFO, clock=clock)
    for node in ("4", "6", "7", "5", "3"):
        first.feed(message("executing", node=node))
        clock.now += 0.1
    for step in range(1, 11):
        first.feed(message("progress", value=step, max=10, node="3"))
        clock.now += 0.3  # 3 seconds of sampling
    for node in ("8", "9"):
        first.feed(message("executing", node=node))
        clock.now += 0.1
    first.end()
    learned: dict[str, float] = {}
    learn(learned, first.timings())
    assert abs(learned["KSampler/step"] - 0.31) < 1e-6  # 3.1 s over 10 steps
    # The next job on this backend, with twice the steps: 6 s of sampling left at start.
    second = ProgressTracker(sampler_graph(steps=20), OBJECT_INFO, learned, clock=clock)
    for node in ("4", "6", "7", "5", "3"):
        second.feed(message("executing", node=node))
    eta = second.eta_seconds()
    assert eta is not None and 6.0 <= eta <= 6.5
    second.feed(message("progress", value=10, max=20, node="3"))
    eta = second.eta_seconds()
    assert eta is not None and 3.0 <= eta <= 3.5


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
