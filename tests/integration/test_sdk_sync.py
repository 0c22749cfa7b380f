"""Atelier (the sync client) against a real server (`atelier serve`, a process of its own)
with the fake ComfyUI; events survive a connection cut by a real TCP proxy."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from atelier.client import Atelier, ConnectionFailed, GraphInvalid, JobNotFound, NotFound
from atelier.testing import ThreadedFakeComfyUI
from tests.conftest import free_port
from tests.e2e import test_cli as cli
from tests.graphs import image_graph, sampler_graph


class CuttingProxy:
    """Forwards TCP to ``target``; cuts the first connection that asks for a job's
    events once two events went through it. Records every events request."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.event_requests: list[bytes] = []
        self.cut = False

    async def serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        watching = asyncio.Event()

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                if b"/events" in data:
                    self.event_requests.append(data)
                    if not self.cut:
                        self.cut = True
                        watching.set()
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def server_to_client() -> None:
            frames, pending = 0, b""
            while data := await upstream_reader.read(65536):
                if not watching.is_set():
                    writer.write(data)
                    await writer.drain()
                    continue
                # Whole frames only, so the cut comes after exactly two events however
                # the server's writes were split or merged on the way (a loaded machine
                # can deliver three frames in one read).
                pending += data
                while (frame := _next_frame(pending)) is not None:
                    pending = pending[len(frame) :]
                    writer.write(frame)
                    await writer.drain()
                    frames += b"data:" in frame
                    if frames >= 2:
                        return  # cut: close both sides mid-stream

        pumps = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the proxy shuts down mid-stream: no socket is left to the GC
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            writer.close()
            upstream_writer.close()


def _next_frame(buffer: bytes) -> bytes | None:
    """The first whole SSE frame in ``buffer`` (with its blank line), if one has arrived."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep)) >= 0]
    return buffer[: min(ends)] if ends else None


class ProxyThread:
    """A CuttingProxy on an event loop in a thread of its own."""

    def __init__(self, target_port: int) -> None:
        self.proxy = CuttingProxy(target_port)
        self.url = f"http://127.0.0.1:{self.proxy.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self.proxy.serve(), self._loop).result()
        return self.proxy

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self._server.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # their finally blocks run
            await asyncio.sleep(0)  # the transports' close callbacks run before the loop stops

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Served:
    url: str
    fake: ThreadedFakeComfyUI


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`atelier serve` as a process of its own (its own main thread and signals) on a real
    port, with a fake ComfyUI; shared by this module's tests, which make their own jobs."""
    root = tmp_path_factory.mktemp("sdk-sync")
    with ThreadedFakeComfyUI(root_dir=root / "comfy", name="a") as fake:
        port = free_port()
        command = [sys.executable, "-m", "atelier", "serve", "--port", str(port)]
        command += ["--data-dir", str(root / "data"), "--backend", fake.url]
        log = (root / "serve.log").open("w")  # a file: a pipe nobody reads could fill up
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            cli._wait_ready(url, process)
            yield Served(url, fake)
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()


def test_run_a_workflow_and_save_its_outputs(served: Served, tmp_path: Path) -> None:
    with Atelier(served.url, api_key="") as atelier:
        assert "resize" in [w.name for w in atelier.workflows()]
        width = atelier.workflow("resize").parameter("width")
        assert width["type"] == "integer"

        source = tmp_path / "photo.png"
        Image.new("RGB", (80, 60), "blue").save(source)
        upload = atelier.upload(source)
        assert upload.filename == "photo.png" and upload.width == 80

        job = atelier.run("resize", {"image": upload.id, "width": 40, "height": 30}, timeout=60)
        assert job.status == "completed", job.error
        assert job.params is not None and job.params["width"] == 40
        [path] = atelier.save_outputs(job.id, tmp_path / "out")
        with Image.open(path) as image:
            assert image.size == (40, 30)
        assert not list((tmp_path / "out").glob("*.part"))

        quick = atelier.submit(image_graph(size=24), wait=30)
        assert quick.status == "completed" and quick.outputs[0].width == 24
        assert atelier.download(quick.outputs[0].id)[:8] == b"\x89PNG\r\n\x1a\n"
        with pytest.raises(NotFound):
            atelier.download("no-such-artifact")
        with pytest.raises(GraphInvalid):
            atelier.submit({"1": {"class_type": "NoSuchNode", "inputs": {}}})
        with pytest.raises(JobNotFound):
            atelier.wait("no-such-job")


def test_events_resume_with_last_event_id_after_the_connection_is_cut(served: Served) -> None:
    served.fake.fake.set_timing(step_time=0.05)
    port = int(served.url.rsplit(":", 1)[1])
    with ProxyThread(port) as proxy, Atelier(f"http://127.0.0.1:{proxy.port}", api_key="") as c:
        job = c.submit(sampler_graph(steps=12))
        events = list(c.events(job.id))
    served.fake.fake.set_timing(step_time=0.0)
    ids = [e.id for e in events]
    assert proxy.cut and len(proxy.event_requests) == 2
    assert b"last-event-id" not in proxy.event_requests[0].lower()
    resumed_from = ids[1]  # the proxy cut after two events
    assert f"last-event-id: {resumed_from}".encode() in proxy.event_requests[1].lower()
    assert ids == sorted(set(ids)), "no event twice, none out of order"
    assert events[0].type == "queued" and events[-1].type == "completed"
    with Atelier(served.url, api_key="") as direct:
        assert [e.id for e in direct.events(job.id)] == ids, "none missed"


def test_a_server_that_is_down_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Atelier(url) as atelier, pytest.raises(ConnectionFailed, match="cannot reach Atelier"):
        atelier.workflows()


def test_the_readme_python_example_runs(served: Served, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = readme.split("```python\n")[1:]
    [example] = [b.split("```", 1)[0] for b in blocks if "from atelier.client import" in b]
    env = {**os.environ, "ATELIER_URL": served.url, "ATELIER_API_KEY": ""}
    ran = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    status, path = ran.stdout.splitlines()[0], ran.stdout.splitlines()[1]
    assert status.startswith("completed ")
    with Image.open(tmp_path / path) as image:
        assert image.size == (512, 512)
