"""Running the fake ComfyUI on its own event loop thread, or forever for a CLI."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from atelier.testing.fake_comfyui import FakeComfyUI

logger = logging.getLogger("atelier.testing")

T = TypeVar("T")


class ThreadedFakeComfyUI:
    """A FakeComfyUI in a background thread with its own event loop.

    It behaves like a separate process: its work never blocks the caller's loop, and the
    caller talks to it only over the network (plus these synchronous controls).
    """

    def __init__(self, *args: Any, call_timeout: float = 30.0, **kwargs: Any) -> None:
        self._fake = FakeComfyUI(*args, **kwargs)
        self._call_timeout = call_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def fake(self) -> FakeComfyUI:
        """The underlying server; touch it only through `call()` from other threads."""
        return self._fake

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="fake-comfyui-loop", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the fake's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        return future.result(self._call_timeout)

    def _call_sync(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def invoke() -> Any:
            return fn(*args, **kwargs)

        return self.call(invoke())

    def start(self) -> None:
        self.call(self._fake.start())

    def crash(self) -> None:
        self.call(self._fake.crash())

    def restart(self) -> None:
        self.call(self._fake.restart())

    def drop_websockets(self) -> None:
        self.call(self._fake.drop_websockets())

    def hang(self) -> None:
        self._call_sync(self._fake.hang)

    def unhang(self) -> None:
        self._call_sync(self._fake.unhang)

    def fail_node(
        self, class_type: str, message: str = "boom", exception_type: str = "RuntimeError"
    ) -> None:
        self._call_sync(self._fake.fail_node, class_type, message, exception_type)

    def clear_faults(self) -> None:
        self._call_sync(self._fake.clear_faults)

    def set_timing(
        self,
        step_time: float | None = None,
        node_time: float | None = None,
        model_load_time: float | None = None,
    ) -> None:
        self._call_sync(self._fake.set_timing, step_time, node_time, model_load_time)

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            self._fake.discard()
            return
        try:
            self.call(self._shutdown())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self._call_timeout)
            self._loop = self._thread = None
            if not thread.is_alive():
                loop.close()

    async def _shutdown(self) -> None:
        await self._fake.close()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self._fake.url

    @property
    def port(self) -> int:
        return self._fake.port

    @property
    def root_dir(self) -> Path:
        return self._fake.root_dir

    @property
    def prompt_count(self) -> int:
        return self._fake.prompt_count

    @property
    def model_switches(self) -> int:
        return self._fake.model_switches

    @property
    def loaded_checkpoint(self) -> str | None:
        return self._fake.loaded_checkpoint

    @property
    def ws_connection_count(self) -> int:
        return self._fake.ws_connection_count


async def run_fake_comfyui(
    host: str = "127.0.0.1",
    port: int = 8188,
    step_time: float = 0.0,
    node_time: float = 0.0,
    model_load_time: float = 0.0,
    root_dir: str | Path | None = None,
    **kwargs: Any,
) -> None:
    """Serve a fake ComfyUI until cancelled (the `atelier fake-comfyui` command)."""
    fake = FakeComfyUI(
        host=host,
        port=port,
        root_dir=root_dir,
        step_time=step_time,
        node_time=node_time,
        model_load_time=model_load_time,
        **kwargs,
    )
    await fake.start()
    logger.info("Fake ComfyUI listening on %s", fake.url)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()
