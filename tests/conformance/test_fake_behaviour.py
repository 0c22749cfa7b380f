"""Fault injection, queue semantics, interrupts, progress and model timing of the fake."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from atelier.testing import FakeComfyUI, ThreadedFakeComfyUI
from tests.conformance.support import (
    history_entry,
    image_graph,
    run,
    sampler_graph,
    submit,
)
from tests.conformance.transcript import WsRecorder


async def test_crash_refuses_connections_and_start_comes_back_empty_on_the_same_port(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    entry = await run(http, image_graph(), client_id="c")
    preview = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    previewed = await run(http, {**image_graph(), "4": preview})
    temp_file = previewed["outputs"]["4"]["images"][0]["filename"]
    assert (comfy.root_dir / "temp" / temp_file).exists()
    port = comfy.port
    async with WsRecorder(comfy.url, "c") as ws:
        await ws.wait_count(1)
        await comfy.crash()
        await asyncio.wait_for(ws.closed.wait(), 5)
        with pytest.raises(httpx.ConnectError):
            await http.get("/queue")
    await comfy.start()
    assert comfy.port == port
    assert (await http.get("/history")).json() == {}
    saved = entry["outputs"]["3"]["images"][0]["filename"]
    assert (comfy.root_dir / "output" / saved).exists()  # output/ survives
    assert not (comfy.root_dir / "temp" / temp_file).exists()  # temp/ does not
    response = await http.post("/prompt", json={"prompt": image_graph()})
    assert response.json()["number"] == 0  # the counter restarted too


async def test_restart_loses_running_and_queued_prompts(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(step_time=0.2)
    running = await submit(http, sampler_graph(steps=20))
    queued = await submit(http, image_graph())
    await comfy.restart()
    queue = (await http.get("/queue")).json()
    assert queue == {"queue_running": [], "queue_pending": []}
    assert (await http.get(f"/history/{running}")).json() == {}
    assert (await http.get(f"/history/{queued}")).json() == {}


async def test_hang_stalls_requests_until_unhang(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.hang()
    with pytest.raises(httpx.ReadTimeout):
        await http.get("/queue", timeout=0.3)
    pending = asyncio.create_task(http.get("/system_stats"))
    await asyncio.sleep(0.2)
    assert not pending.done()
    comfy.unhang()
    assert (await pending).status_code == 200


async def test_hang_freezes_the_worker_and_the_socket(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(step_time=0.05)
    async with WsRecorder(comfy.url, "h") as ws:
        await ws.wait_count(1)
        prompt_id = await submit(http, sampler_graph(steps=6), client_id="h")
        await ws.wait_for(lambda m: m["type"] == "progress")
        comfy.hang()
        await asyncio.sleep(0.1)  # what was already on the wire arrives
        seen = len(ws.messages)
        await asyncio.sleep(0.4)
        assert len(ws.messages) == seen
        assert "execution_success" not in ws.types()
        comfy.unhang()
        await ws.wait_done(prompt_id)


async def test_drop_websockets_keeps_the_prompt_running(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(step_time=0.05)
    async with WsRecorder(comfy.url, "d") as ws:
        await ws.wait_count(1)
        assert comfy.ws_connection_count == 1
        prompt_id = await submit(http, sampler_graph(steps=8), client_id="d")
        await ws.wait_for(lambda m: m["type"] == "progress")
        await comfy.drop_websockets()
        await asyncio.wait_for(ws.closed.wait(), 5)
    async with WsRecorder(comfy.url, "d") as again:
        greeting = await again.wait_for(lambda m: m["type"] == "status")
        assert greeting["data"]["sid"] == "d"
        entry = await history_entry(http, prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert comfy.prompt_count == 1


async def test_fail_node_reports_an_execution_error(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.fail_node("ImageInvert", "boom", "RuntimeError")
    async with WsRecorder(comfy.url, "f") as ws:
        prompt_id = await submit(http, image_graph(), client_id="f")
        await ws.wait_done(prompt_id)
    types = ws.types()
    assert types[-3:] == ["execution_error", "status", "executing"]
    assert "execution_success" not in types
    error = ws.json_messages()[-3]["data"]
    assert set(error) == {
        "prompt_id",
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "traceback",
        "current_inputs",
        "current_outputs",
        "timestamp",
    }
    assert (error["node_id"], error["node_type"]) == ("2", "ImageInvert")
    assert (error["exception_message"], error["exception_type"]) == ("boom\n", "RuntimeError")
    assert error["executed"] == ["1"] and sorted(error["current_outputs"]) == ["1", "2", "3"]
    assert isinstance(error["traceback"], list) and list(error["current_inputs"]) == ["image"]
    # The failing node never reports itself finished.
    finished = [
        m["data"]["nodes"]["2"]["state"]
        for m in ws.json_messages()
        if m["type"] == "progress_state" and "2" in m["data"]["nodes"]
    ]
    assert finished == ["running"]
    entry = await history_entry(http, prompt_id)
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_error"

    comfy.clear_faults()
    assert (await run(http, image_graph(prefix="ok")))["status"]["status_str"] == "success"


async def test_out_of_memory_appends_the_tip_and_unloads_models(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.fail_node("KSampler", "Allocation on device", "torch.OutOfMemoryError")
    entry = await run(http, sampler_graph())
    event, error = entry["status"]["messages"][-1]
    assert event == "execution_error"
    assert error["exception_type"] == "torch.OutOfMemoryError"
    assert error["exception_message"].startswith("Allocation on device\nThis error means")
    assert comfy.loaded_checkpoint is None


async def test_queue_delete_and_clear(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    comfy.set_timing(step_time=0.1)
    running = await submit(http, sampler_graph(steps=30))
    pending = [await submit(http, image_graph(prefix=f"p{i}")) for i in range(3)]
    queue = (await http.get("/queue")).json()
    assert [item[1] for item in queue["queue_running"]] == [running]
    assert sorted(item[1] for item in queue["queue_pending"]) == sorted(pending)
    assert all(len(item) == 5 for item in queue["queue_pending"])
    assert (await http.get("/prompt")).json() == {"exec_info": {"queue_remaining": 4}}

    assert (await http.post("/queue", json={"delete": [pending[1]]})).status_code == 200
    left = [item[1] for item in (await http.get("/queue")).json()["queue_pending"]]
    assert sorted(left) == sorted([pending[0], pending[2]])
    await http.post("/queue", json={"clear": True})
    queue = (await http.get("/queue")).json()
    assert queue["queue_pending"] == [] and len(queue["queue_running"]) == 1
    assert (await http.post("/queue", content=b"")).status_code == 500
    await http.post("/interrupt")


async def test_front_and_number_set_the_order(comfy: FakeComfyUI, http: httpx.AsyncClient) -> None:
    comfy.set_timing(step_time=0.05)
    async with WsRecorder(comfy.url, "o") as ws:
        blocker = await submit(http, sampler_graph(steps=10), client_id="o")
        ids = {
            "auto": await submit(http, image_graph(prefix="a"), client_id="o"),
            "front1": await submit(http, image_graph(prefix="b"), client_id="o", front=True),
            "front2": await submit(http, image_graph(prefix="c"), client_id="o", front=True),
        }
        response = await http.post(
            "/prompt", json={"prompt": image_graph(prefix="d"), "client_id": "o", "number": 0.5}
        )
        assert response.json()["number"] == 0.5
        ids["number"] = response.json()["prompt_id"]
        for prompt_id in ids.values():
            await ws.wait_done(prompt_id)
    started = [m["data"]["prompt_id"] for m in ws.json_messages() if m["type"] == "execution_start"]
    by_id = {v: k for k, v in ids.items()}
    assert started[0] == blocker
    # Later front items run before earlier ones; 0.5 sits between -2 and the auto number.
    assert [by_id[p] for p in started[1:]] == ["front2", "front1", "number", "auto"]


async def test_interrupt_is_blamed_on_the_next_node(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(node_time=0.4)
    async with WsRecorder(comfy.url, "i") as ws:
        prompt_id = await submit(http, image_graph(), client_id="i")
        await ws.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "2")
        await http.post("/interrupt", json={})
        await ws.wait_done(prompt_id)
    interrupted = next(
        m["data"] for m in ws.json_messages() if m["type"] == "execution_interrupted"
    )
    assert (interrupted["node_id"], interrupted["node_type"]) == ("3", "SaveImage")
    assert sorted(interrupted["executed"]) == ["1", "2"]
    entry = await history_entry(http, prompt_id)
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["outputs"] == {}


async def test_targeted_interrupt_only_hits_the_running_prompt(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(step_time=0.05)
    first = await submit(http, sampler_graph(steps=10))
    second = await submit(http, image_graph())
    await asyncio.sleep(0.1)
    await http.post("/interrupt", json={"prompt_id": second})  # pending: ignored
    await http.post("/interrupt", json={"prompt_id": "nope"})
    assert (await history_entry(http, first))["status"]["status_str"] == "success"
    assert (await history_entry(http, second))["status"]["status_str"] == "success"

    third = await submit(http, sampler_graph(steps=40, seed=2))
    await asyncio.sleep(0.2)
    await http.post("/interrupt", json={"prompt_id": third})
    entry = await history_entry(http, third)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


async def test_ksampler_sends_one_progress_per_step(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    async with WsRecorder(comfy.url, "k") as ws:
        prompt_id = await submit(http, sampler_graph(steps=7), client_id="k")
        await ws.wait_done(prompt_id)
    progress = [m["data"] for m in ws.json_messages() if m["type"] == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [
        (i, 7, "3") for i in range(1, 8)
    ]
    assert all(p["prompt_id"] == prompt_id for p in progress)
    # Every hook call also reports the node's state, just before its `progress`.
    types = ws.types()
    for index, kind in enumerate(types):
        if kind == "progress":
            assert types[index - 1] == "progress_state"


async def test_model_switches_charge_model_load_time(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(model_load_time=0.3)
    sdxl = "sd_xl_base_1.0.safetensors"
    began = time.monotonic()
    await run(http, sampler_graph(seed=1))
    assert time.monotonic() - began >= 0.3
    await run(http, sampler_graph(seed=2))  # same checkpoint: the loader is cached
    assert comfy.model_switches == 1
    await run(http, sampler_graph(seed=3, checkpoint=sdxl))
    assert (comfy.model_switches, comfy.loaded_checkpoint) == (2, sdxl)
    began = time.monotonic()
    await run(http, sampler_graph(seed=4))
    assert time.monotonic() - began >= 0.3
    assert comfy.model_switches == 3 and comfy.prompt_count == 4


async def test_rerun_is_cached_and_free_memory_resets_the_cache(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    first = await run(http, image_graph())
    again = await run(http, image_graph())
    assert again["status"]["messages"][1][1]["nodes"] == ["1", "2", "3"]
    assert again["outputs"] == first["outputs"]  # no new file: the old one is reused
    assert len(list((comfy.root_dir / "output").iterdir())) == 1
    await http.post("/free", json={"free_memory": True})  # while idle: applies at once
    third = await run(http, image_graph())
    assert third["status"]["messages"][1][1]["nodes"] == []
    assert len(list((comfy.root_dir / "output").iterdir())) == 2


async def test_websocket_targeting_and_feature_flags(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    async with WsRecorder(comfy.url, "owner") as owner, WsRecorder(comfy.url) as bystander:
        await owner.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        await owner.send({"type": "feature_flags", "data": {}})  # not the first: ignored
        await owner.wait_for(lambda m: m["type"] == "feature_flags")
        sid = (await bystander.wait_for(lambda m: "sid" in m["data"]))["data"]["sid"]
        assert len(sid) == 32
        prompt_id = await submit(http, image_graph(), client_id="owner")
        await owner.wait_done(prompt_id)
        untargeted = await submit(http, sampler_graph(steps=2))
        await history_entry(http, untargeted)
        await bystander.wait_for(lambda m: m["type"] == "progress")
    assert owner.types().count("feature_flags") == 1
    bystander_types = set(bystander.types())
    # Another client's prompt shows only as status; a prompt without client_id broadcasts
    # its progress but never executing/executed.
    assert bystander_types == {"status", "progress_state", "progress"}


async def test_reconnecting_submitter_gets_the_running_node(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    comfy.set_timing(step_time=0.1)
    async with WsRecorder(comfy.url, "r") as ws:
        prompt_id = await submit(http, sampler_graph(steps=10), client_id="r")
        await ws.wait_for(lambda m: m["type"] == "progress")
    async with WsRecorder(comfy.url, "r") as again:
        await again.wait_count(2)
        assert again.messages[1] == {"type": "executing", "data": {"node": "3"}}
        await again.wait_done(prompt_id)


def test_threaded_fake_runs_on_its_own_loop(tmp_path: Path) -> None:
    with ThreadedFakeComfyUI(root_dir=tmp_path / "t", step_time=0.01) as fake:
        port = fake.port
        with httpx.Client(base_url=fake.url, timeout=10) as client:
            prompt_id = client.post("/prompt", json={"prompt": sampler_graph()}).json()["prompt_id"]
            for _ in range(500):
                if client.get(f"/history/{prompt_id}").json():
                    break
                time.sleep(0.01)
            assert fake.prompt_count == 1 and fake.model_switches == 1
            fake.hang()
            with pytest.raises(httpx.ReadTimeout):
                client.get("/queue", timeout=0.2)
            fake.unhang()
            fake.fail_node("ImageInvert")
            fake.clear_faults()
            fake.set_timing(step_time=0.0)
            fake.drop_websockets()
            fake.crash()
            with pytest.raises(httpx.ConnectError):
                client.get("/queue")
            fake.start()
            assert fake.port == port
            assert client.get("/history").json() == {}
            fake.restart()
            assert client.get("/queue").status_code == 200
        assert (fake.root_dir / "input" / "example.png").exists()


async def test_threaded_fake_does_not_block_the_callers_loop(tmp_path: Path) -> None:
    with ThreadedFakeComfyUI(root_dir=tmp_path / "t") as fake:
        async with httpx.AsyncClient(base_url=fake.url) as client:
            entry = await run(client, image_graph())
    assert entry["status"]["completed"] is True


async def test_binary_frames_follow_the_negotiated_format(
    comfy: FakeComfyUI, http: httpx.AsyncClient
) -> None:
    graph = image_graph()
    graph["3"] = {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}}
    graph["4"] = {"class_type": "GetImageSize", "inputs": {"image": ["2", 0]}}
    graph["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}
    async with WsRecorder(comfy.url, "new") as modern, WsRecorder(comfy.url, "old") as legacy:
        await modern.send({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        await modern.wait_for(lambda m: m["type"] == "feature_flags")
        first = await submit(http, graph, client_id="new")
        await modern.wait_done(first)
        graph["3"]["inputs"]["images"] = ["1", 0]  # IS_CHANGED is time anyway: never cached
        second = await submit(http, graph, client_id="old")
        await legacy.wait_done(second)

    def kinds(recorder: WsRecorder) -> list[str]:
        out = []
        for m in recorder.messages:
            if isinstance(m, bytes):
                out.append(f"bin{int.from_bytes(m[:4], 'big')}")
            elif m["type"] in ("progress", "progress_state"):
                out.append(m["type"])
        return out

    # Type 4 (with metadata) comes before `progress`; legacy type 1 after it. The TEXT
    # frame of GetImageSize (type 3) goes to every socket, once: the second prompt finds
    # that node cached.
    assert "bin4" in kinds(modern) and "bin1" not in kinds(modern)
    modern_kinds = [k for k in kinds(modern) if k != "bin3"]
    index = modern_kinds.index("bin4")
    assert modern_kinds[index - 1 : index + 2] == ["progress_state", "bin4", "progress"]
    legacy_kinds = [k for k in kinds(legacy) if k != "bin3"]
    index = legacy_kinds.index("bin1")
    assert legacy_kinds[index - 2 : index + 1] == ["progress_state", "progress", "bin1"]
    assert kinds(modern).count("bin3") == 1 and kinds(legacy).count("bin3") == 1
    frame = next(m for m in legacy.messages if isinstance(m, bytes) and m[:4] == b"\0\0\0\1")
    assert frame[4:8] == b"\0\0\0\2" and frame[8:12] == b"\x89PNG"
