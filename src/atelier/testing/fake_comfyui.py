"""A protocol-faithful fake ComfyUI server on a real port (see docs/COMFYUI_PROTOCOL.md).

One FakeComfyUI object outlives several "processes": `crash()` kills the current one
(listening socket, connections, queue, history, cache, counter, temp/) and `start()` boots
a fresh one on the same port with input/ and output/ kept, like a restart of ComfyUI.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import shutil
import struct
import tempfile
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from ipaddress import ip_address
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from atelier.testing.executor import PromptExecutor
from atelier.testing.fake_queue import PromptQueue, QueueItem
from atelier.testing.faults import ExecutionLog, FaultSwitches
from atelier.testing.media import Dirs
from atelier.testing.node_api import FakeNodeError, ModelState, Timing
from atelier.testing.routes import MAX_UPLOAD_SIZE, SERVER_FEATURES, Routes, ServerTrouble
from atelier.testing.schema import DEFAULT_MODELS, NodeSchemas
from atelier.testing.validation import MalformedPrompt
from atelier.testing.values import pattern_image

logger = logging.getLogger("atelier.testing.fake_comfyui")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TROUBLE_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
# What a login page or a proxy in front of the wrong service answers (the "page" fault).
_PAGE_HTML = "<!doctype html><html><body><h1>Sign in</h1></body></html>"
# Exceptions that make ComfyUI's handlers crash on malformed bodies (bad JSON, wrong shapes).
_HANDLER_CRASHES = (
    ServerTrouble,
    MalformedPrompt,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OSError,
)
# A loaded checkpoint is assumed to take this much VRAM in /system_stats.
_CHECKPOINT_VRAM = 2 * 1024**3


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _is_fake_control(request: web.Request) -> bool:
    """The fake's own /fake/ routes, which its faults leave reachable."""
    return request.path.startswith("/fake/")


def _is_accept_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_name == "_accept_connection2"


async def _settle_accepted_connections(max_rounds: int = 100) -> None:
    """Waits until no accepted socket is still being wrapped into a transport.

    asyncio asserts that its listening Server is open when it wraps an accepted socket, so
    closing the listener in between leaks that socket (a ResourceWarning in the tests of
    whoever was connecting). Once none is pending, closing in the same step is safe: the
    listener's reader callback is cancelled together with the listening socket.
    """
    for _ in range(max_rounds):
        if not any(_is_accept_task(t) for t in asyncio.all_tasks() if not t.done()):
            return
        await asyncio.sleep(0)


class FakeComfyUI:
    """ComfyUI 0.3.64 as seen over HTTP and WebSocket, with simulated models.

    Timing knobs: `step_time` per KSampler step, `node_time` extra per executed node,
    `model_load_time` when CheckpointLoaderSimple loads another checkpoint than the one
    held. `prompt_count` and `model_switches` count over the object's whole life, across
    crash()/start(); everything ComfyUI keeps in memory is lost on crash().
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        root_dir: str | Path | None = None,
        step_time: float = 0.0,
        node_time: float = 0.0,
        model_load_time: float = 0.0,
        models: Mapping[str, Sequence[str]] | None = None,
        vram_total: int = 24 * 1024**3,
        name: str = "fake",
        custom_nodes: Mapping[str, dict[str, Any]] | None = None,
        view_delay: float = 0.0,
        execution_log: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.vram_total = vram_total
        self._owns_root = root_dir is None
        if root_dir is None:
            root_dir = tempfile.mkdtemp(prefix="fake-comfyui-")
        self.root_dir = Path(root_dir).resolve()
        self.dirs = Dirs(self.root_dir)
        self._prepare_dirs()
        self.timing = Timing(step_time, node_time, model_load_time)
        self.models = ModelState()
        source = DEFAULT_MODELS if models is None else models
        self.model_files: dict[str, list[str]] = {k: list(v) for k, v in source.items()}
        # Extra /object_info entries; nodes without an implementation are simulated.
        self.custom_nodes = dict(custom_nodes or {})
        self.prompt_count = 0
        self._faults: dict[str, tuple[str, str]] = {}
        self._view_delay = view_delay
        self.execution_log = ExecutionLog(execution_log, name) if execution_log else None
        self._awake = asyncio.Event()
        self._awake.set()
        self._runner: web.AppRunner | None = None
        self._closed = False
        self._new_process()

    # -- process state -----------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        fresh = not self.dirs.input.exists()
        for folder in (self.dirs.input, self.dirs.output, self.dirs.temp):
            folder.mkdir(parents=True, exist_ok=True)
        if fresh:
            # ComfyUI ships input/example.png.
            pattern_image(512, 512, "example").save(self.dirs.input / "example.png")

    def _new_process(self) -> None:
        """Everything a ComfyUI process holds in memory, fresh."""
        self.number = 0
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self._interrupt = False
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._sockets_metadata: dict[str, dict[str, Any]] = {}
        self._websockets: set[web.WebSocketResponse] = set()
        self._messages: asyncio.Queue[tuple[str | int, Any, str | None]] = asyncio.Queue()
        self.queue = PromptQueue(self._queue_updated)
        self.executor = PromptExecutor(self)
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.models.loaded_checkpoint = None
        # Switched on at runtime over POST /fake/fault; a new process starts without them.
        self.faults = FaultSwitches(self, self._view_delay)

    def _empty_temp(self) -> None:
        shutil.rmtree(self.dirs.temp, ignore_errors=True)
        self.dirs.temp.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the fake ComfyUI is already running")
        if self._closed and self._owns_root:
            raise RuntimeError("this fake ComfyUI was closed and its directory removed")
        self._prepare_dirs()
        self._new_process()
        self._empty_temp()
        self._awake.set()
        app = web.Application(
            client_max_size=MAX_UPLOAD_SIZE,
            middlewares=[
                self._origin_middleware,
                self._hang_middleware,
                self._trouble_middleware,
                self._crash_middleware,
            ],
        )
        Routes(self).register(app)
        # handler_cancellation: a client hanging up cancels its handler, so hung requests
        # do not linger after their connection is gone.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fake-comfyui")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._publish_loop(), name="fake-comfyui-publish"),
            loop.create_task(self._worker(), name="fake-comfyui-worker"),
        ]
        self._tasks[1].add_done_callback(self._worker_died)

    async def _stop_process(self, graceful: bool) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if graceful:
            self._awake.set()  # let hung requests finish before closing
        await _settle_accepted_connections()
        for site in list(runner.sites):
            await site.stop()
        await asyncio.sleep(0)  # connections accepted last get registered with aiohttp
        if graceful:
            await self.drop_websockets()
        elif runner.server is not None:
            for handler in runner.server.connections:
                if handler.transport is not None:
                    handler.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.faults.close()
        if self._pool is not None:
            # A node computing in the pool cannot be stopped; its result is discarded.
            self._pool.shutdown(wait=False, cancel_futures=True)
        await runner.cleanup()
        self._new_process()
        self._empty_temp()
        self._awake.set()  # a new process is not hung

    async def crash(self) -> None:
        """Like the process dying: refused connections, reset sockets, state gone."""
        await self._stop_process(graceful=False)

    async def restart(self) -> None:
        await self.crash()
        await self.start()

    async def close(self) -> None:
        await self._stop_process(graceful=True)
        self.discard()

    def discard(self) -> None:
        """Forget a server that is not running; removes the directory it created."""
        if self._runner is not None:
            raise RuntimeError("close() a running fake ComfyUI instead")
        self._closed = True
        if self._owns_root:
            shutil.rmtree(self.root_dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- fault injection and introspection ---------------------------------------------

    def hang(self) -> None:
        """Freeze like a stopped process: requests wait, no WS message, no progress."""
        self._awake.clear()

    def unhang(self) -> None:
        self._awake.set()

    @property
    def hung(self) -> bool:
        return not self._awake.is_set()

    async def drop_websockets(self) -> None:
        """Close every WebSocket from the server side; the server keeps running."""
        for ws in list(self._websockets):
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY), 2.0)

    def fail_node(
        self, class_type: str, message: str = "boom", exception_type: str = "RuntimeError"
    ) -> None:
        """Make every later execution of `class_type` raise (an `execution_error`)."""
        self._faults[class_type] = (message, exception_type)

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_timing(
        self,
        step_time: float | None = None,
        node_time: float | None = None,
        model_load_time: float | None = None,
    ) -> None:
        if step_time is not None:
            self.timing.step_time = step_time
        if node_time is not None:
            self.timing.node_time = node_time
        if model_load_time is not None:
            self.timing.model_load_time = model_load_time

    @property
    def model_switches(self) -> int:
        return self.models.model_switches

    @property
    def loaded_checkpoint(self) -> str | None:
        return self.models.loaded_checkpoint

    @property
    def ws_connection_count(self) -> int:
        return len(self._websockets)

    # -- services for the executor and routes ------------------------------------------

    def schemas(self) -> NodeSchemas:
        return NodeSchemas(self.model_files, self.dirs.input, self.custom_nodes)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.tasks_remaining()}}

    def _queue_updated(self) -> None:
        self.send_sync("status", {"status": self.queue_info()}, None)

    def send_sync(self, event: str | int, data: Any, sid: str | None) -> None:
        self._messages.put_nowait((event, data, sid))

    def request_interrupt(self) -> None:
        self._interrupt = True

    def interrupt_requested(self) -> bool:
        return self._interrupt

    async def wait_awake(self) -> None:
        await self._awake.wait()

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None:
            return False
        flags = self._sockets_metadata.get(sid, {}).get("feature_flags", {})
        return isinstance(flags, dict) and flags.get("supports_preview_metadata") is True

    def injected_fault(self, class_type: str) -> FakeNodeError | None:
        fault = self._faults.get(class_type)
        return FakeNodeError(*fault) if fault is not None else None

    def vram_free(self) -> int:
        used = _CHECKPOINT_VRAM if self.models.loaded_checkpoint else 0
        return max(0, self.vram_total - used)

    # -- worker ------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            await self._awake.wait()
            got = await self.queue.get()
            await self._awake.wait()
            if got is not None:
                await self._run_prompt(*got)
            flags = self.queue.take_flags()
            free_memory = flags.get("free_memory", False)
            if flags.get("unload_models", free_memory):
                self.models.loaded_checkpoint = None
            if free_memory:
                self.executor.reset()

    async def _run_prompt(self, item: QueueItem, item_id: int) -> None:
        self._interrupt = False
        prompt_id = item[1]
        extra_data = item[3] if isinstance(item[3], dict) else {}
        if self.execution_log is not None:
            self.execution_log.started(prompt_id)
        outcome = await self.executor.execute(item[2], prompt_id, extra_data, item[4])
        self.prompt_count += 1
        if self.execution_log is not None:
            self.execution_log.ended(prompt_id, outcome.success)
        status = {
            "status_str": "success" if outcome.success else "error",
            "completed": outcome.success,
            "messages": [[event, data] for event, data in outcome.messages],
        }
        result = {"outputs": outcome.outputs, "meta": outcome.meta}
        self.queue.task_done(item_id, result, status)
        if self.client_id is not None:
            end = {"node": None, "prompt_id": prompt_id}
            self.send_sync("executing", end, self.client_id)

    def _worker_died(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Like ComfyUI's worker thread: the server keeps answering but runs nothing.
            logger.error("fake ComfyUI worker died", exc_info=task.exception())

    # -- websocket ---------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            event, data, sid = await self._messages.get()
            await self._awake.wait()
            if sid is None:
                targets = list(self._sockets.values())
            elif sid in self._sockets:
                targets = [self._sockets[sid]]
            else:
                continue
            for ws in targets:
                await self._send(ws, event, data)

    async def _send(self, ws: web.WebSocketResponse, event: str | int, data: Any) -> None:
        try:
            if isinstance(data, bytes):
                assert isinstance(event, int)
                await ws.send_bytes(struct.pack(">I", event) + data)
            else:
                await ws.send_str(json.dumps({"type": event, "data": data}))
        except ConnectionError as ex:
            logger.debug("dropping a message for a closing websocket: %s", ex)

    async def websocket_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            # Replaces (without closing) an older socket of the same client.
            self._sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self._sockets[sid] = ws
        self._sockets_metadata[sid] = {"feature_flags": {}}
        self._websockets.add(ws)
        try:
            await self._send(ws, "status", {"status": self.queue_info(), "sid": sid})
            if self.client_id == sid and self.last_node_id is not None:
                await self._send(ws, "executing", {"node": self.last_node_id})
            first_message = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    continue
                if not isinstance(data, dict):
                    continue
                if first_message and data.get("type") == "feature_flags":
                    self._sockets_metadata[sid]["feature_flags"] = data.get("data", {})
                    await self._send(ws, "feature_flags", SERVER_FEATURES)
                first_message = False
        finally:
            # Pops whatever is registered under sid now, even a newer socket (as ComfyUI).
            self._sockets.pop(sid, None)
            self._sockets_metadata.pop(sid, None)
            self._websockets.discard(ws)
        return ws

    # -- middlewares -------------------------------------------------------------------

    @web.middleware
    async def _origin_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        host_header = request.headers.get("Host")
        origin = request.headers.get("Origin")
        if host_header and origin:
            parsed = urllib.parse.urlparse(origin)
            host_parsed = urllib.parse.urlsplit("//" + host_header.lower())
            host_domain: str | None = host_header.lower()
            origin_domain: str | None = parsed.netloc.lower()
            if parsed.port is None:
                host_domain = host_parsed.hostname
            if host_parsed.port is None:
                origin_domain = parsed.hostname
            loopback = _is_loopback(host_parsed.hostname)
            if loopback and host_domain and origin_domain and host_domain != origin_domain:
                return web.Response(status=403)
        if request.method == "OPTIONS":
            return web.Response()
        return await handler(request)

    @web.middleware
    async def _hang_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_fake_control(request):
            await self._awake.wait()
        return await handler(request)

    @web.middleware
    async def _trouble_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if self.faults.errors and not _is_fake_control(request):
            return web.Response(status=500, text=_TROUBLE_TEXT)
        if self.faults.page and not _is_fake_control(request):
            return web.Response(status=self.faults.page, text=_PAGE_HTML, content_type="text/html")
        return await handler(request)

    @web.middleware
    async def _crash_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _HANDLER_CRASHES as ex:
            logger.warning("%s %s crashed (%r): answering 500", request.method, request.path, ex)
            return web.Response(status=500, text=_TROUBLE_TEXT)
