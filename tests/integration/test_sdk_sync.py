"""Atelier (the sync client) against a real server on a real socket, in a thread of its
own, with the fake ComfyUI; events survive a connection cut by a real TCP proxy."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from atelier.client import Atelier, ConnectionFailed, GraphInvalid, JobNotFound, NotFound
from atelier.settings import Settings
from atelier.testing import ThreadedFakeComfyUI
from tests.conftest import free_port, make_settings, start_server
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
            frames = 0
            while data := await upstream_reader.read(65536):
                writer.write(data)
                await writer.drain()
                if watching.is_set():
                    frames += data.count(b"data:")
                    if frames >= 2:
                        return  # cut: close both sides mid-stream

        pumps = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        writer.close()
        upstream_writer.close()


class ThreadedServer:
    """An Atelier (and a CuttingProxy in front of it) on a loop in another thread, so
    that blocking client calls in the test do not block the server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        self.proxy = CuttingProxy(settings.port)
        self.proxy_url = f"http://127.0.0.1:{self.proxy.port}"
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = await start_server(self.settings)
            proxy = await self.proxy.serve()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        await self._stop.wait()
        proxy.close()
        await server.stop()

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture
def threaded(fake: ThreadedFakeComfyUI, tmp_path: Path) -> Iterator[ThreadedServer]:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 's.db'}", [fake.url])
    with ThreadedServer(settings) as server:
        yield server


def test_run_a_workflow_and_save_its_outputs(threaded: ThreadedServer, tmp_path: Path) -> None:
    with Atelier(threaded.url, api_key="") as atelier:
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


def test_events_resume_with_last_event_id_after_the_connection_is_cut(
    threaded: ThreadedServer, fake: ThreadedFakeComfyUI
) -> None:
    fake.fake.set_timing(step_time=0.05)
    with Atelier(threaded.proxy_url, api_key="") as atelier:
        job = atelier.submit(sampler_graph(steps=12))
        events = list(atelier.events(job.id))
    ids = [e.id for e in events]
    assert threaded.proxy.cut and len(threaded.proxy.event_requests) == 2
    assert b"last-event-id" not in threaded.proxy.event_requests[0].lower()
    resumed_from = ids[1]  # the proxy cut after two events
    assert f"last-event-id: {resumed_from}".encode() in threaded.proxy.event_requests[1].lower()
    assert ids == sorted(set(ids)), "no event twice, none out of order"
    assert events[0].type == "queued" and events[-1].type == "completed"
    with Atelier(threaded.url, api_key="") as direct:
        assert [e.id for e in direct.events(job.id)] == ids, "none missed"


def test_a_server_that_is_down_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Atelier(url) as atelier, pytest.raises(ConnectionFailed, match="cannot reach Atelier"):
        atelier.workflows()


def test_the_readme_python_example_runs(threaded: ThreadedServer, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = readme.split("```python\n")[1:]
    [example] = [b.split("```", 1)[0] for b in blocks if "from atelier.client import" in b]
    env = {**os.environ, "ATELIER_URL": threaded.url, "ATELIER_API_KEY": ""}
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
