"""ComfyUI's `PromptQueue`: a min-heap of 5-tuples, the running set and the history.

The heap holds the raw tuples `(number, prompt_id, prompt, extra_data, outputs)`, exactly
like ComfyUI, so equal `(number, prompt_id)` pairs make heapq compare the prompt dicts
and fail the same way the real server does.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Callable
from typing import Any

JsonDict = dict[str, Any]
QueueItem = tuple[Any, str, JsonDict, JsonDict, list[str]]

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self.queue: list[QueueItem] = []
        self.currently_running: dict[int, QueueItem] = {}
        self.history: dict[str, JsonDict] = {}
        self._task_counter = 0
        self._flags: dict[str, Any] = {}
        self._wakeup = asyncio.Event()

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self.queue, item)
        self._on_change()
        self._wakeup.set()

    async def get(self) -> tuple[QueueItem, int] | None:
        """The next item; None when the worker should apply flags set while it idled."""
        while not self.queue:
            if self._flags:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        item = heapq.heappop(self.queue)
        item_id = self._task_counter
        self.currently_running[item_id] = copy.deepcopy(item)
        self._task_counter += 1
        self._on_change()
        return item, item_id

    def task_done(self, item_id: int, history_result: JsonDict, status: JsonDict) -> None:
        running = self.currently_running.pop(item_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        extra_data = running[3]
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            extra_data.pop(key, None)
        entry: JsonDict = {"prompt": running, "outputs": {}, "status": copy.deepcopy(status)}
        entry.update(history_result)
        self.history[running[1]] = entry
        self._on_change()

    def tasks_remaining(self) -> int:
        return len(self.queue) + len(self.currently_running)

    def running(self) -> list[QueueItem]:
        return list(self.currently_running.values())

    def pending(self) -> list[QueueItem]:
        # Heap-array order, not sorted: that is what GET /queue shows.
        return list(self.queue)

    def wipe_queue(self) -> None:
        self.queue = []
        self._on_change()

    def delete_queue_item(self, matches: Callable[[QueueItem], bool]) -> bool:
        for index, item in enumerate(self.queue):
            if matches(item):
                if len(self.queue) == 1:
                    self.wipe_queue()
                else:
                    self.queue.pop(index)
                    heapq.heapify(self.queue)
                self._on_change()
                return True
        return False

    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> JsonDict:
        if prompt_id is not None:
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}
        out: JsonDict = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for index, key in enumerate(self.history):
            if index >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def wipe_history(self) -> None:
        self.history = {}

    def delete_history_item(self, prompt_id: Any) -> None:
        self.history.pop(prompt_id, None)

    def set_flag(self, name: str, value: Any) -> None:
        # ComfyUI's idle worker wakes up every few seconds to look at flags; ours at once.
        self._flags[name] = value
        self._wakeup.set()

    def take_flags(self) -> JsonDict:
        flags, self._flags = self._flags, {}
        return flags
