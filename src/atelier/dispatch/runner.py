"""JobRunner: one attempt of one job on one ComfyUI backend, from submit to stored outputs.

The WebSocket is a hint and /history is the truth. The runner follows the socket for
progress; whenever the socket is silent for ``check_interval``, drops, or signals the end,
it asks ComfyUI directly: /queue first (still pending or running?), then /history
(finished?). Neither means the backend lost the prompt (it restarted): the job is
requeued. A backend that cannot be reached for ``backend_lost_timeout`` is given up on
the same way. The same loop re-attaches to a prompt after Atelier itself restarted.

A database that cannot be reached (restarting, connections cut) fails nothing: the runner
waits until it answers again, then goes on the way a restart would, probing the backend
first if the prompt was (or may have been) submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atelier import logs
from atelier.comfyui import messages as m
from atelier.comfyui.client import ComfySocket
from atelier.comfyui.messages import HistoryEntry
from atelier.db import database
from atelier.dispatch.backends import Backend, BackendPool
from atelier.dispatch.inputs import prepare_inputs
from atelier.dispatch.ledger import JobLedger
from atelier.dispatch.outputs import collect_outputs
from atelier.dispatch.progress import ProgressTracker, learn
from atelier.errors import (
    BackendError,
    BackendProtocolError,
    BackendUnavailable,
    PromptRejected,
)
from atelier.job_state import JobStatus
from atelier.settings import Settings
from atelier.storage.base import ArtifactStore

log = logging.getLogger("atelier.runner")

RECEIVE_SLICE = 0.25  # how often the runner looks at its cancel flag while waiting
# A cut connection to a database that is back at once is retried this many times in a
# row; past that the error is not the database being away, and the job fails.
QUICK_RETRIES = 5


class BackendLost(Exception):
    def __init__(self, reason: str, *, backend_down: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.backend_down = backend_down


@dataclass
class Attempt:
    job_id: str
    attempt_id: str
    number: int
    graph: dict[str, Any]
    owner: str | None
    reattach: bool = False


class JobRunner:
    def __init__(
        self,
        attempt: Attempt,
        backend: Backend,
        *,
        pool: BackendPool,
        ledger: JobLedger,
        store: ArtifactStore,
        settings: Settings,
    ) -> None:
        self.attempt = attempt
        self.backend = backend
        self.client = backend.client
        self.pool = pool
        self.ledger = ledger
        self.store = store
        self.settings = settings
        self.cancel = asyncio.Event()
        self._cancel_sent = False
        self._submitted = attempt.reattach
        self._ambiguous = False  # a submit whose answer we never got may or may not have landed
        self._tracker = ProgressTracker(attempt.graph, backend.object_info, backend.node_seconds)
        self._last_progress_at = 0.0
        self._contact = time.monotonic()
        # Pipelined prompts wait in ComfyUI's queue; until ComfyUI starts one, it can
        # still be moved to a backend that fell idle. After a re-attach, assume started.
        self.started = attempt.reattach
        self.move_target: str | None = None
        self.on_move: Callable[[JobRunner, str, str | None], None] = lambda *_: None

    @property
    def job_id(self) -> str:
        return self.attempt.job_id

    async def run(self) -> None:
        with logs.job_context(
            job_id=self.job_id, attempt=self.attempt.number, backend=self.backend.name
        ):
            await self._run_logged()

    async def _run_logged(self) -> None:
        # Atelier shutting down cancels this task: the prompt goes on in ComfyUI, and the
        # job stays "running" so that the next start re-attaches to it.
        failure: Exception | None = None
        quick_retries = 0  # the database looked unreachable, yet answered at once
        while True:
            try:
                if failure is None:
                    await self._run_or_lose()
                else:
                    await self._fail_internal(failure)
                return
            except Exception as exc:
                if not database.unreachable(exc) or quick_retries >= QUICK_RETRIES:
                    if failure is not None:
                        raise
                    log.exception("runner for job %s failed", self.job_id)
                    failure = exc
                    continue
                log.warning("job %s: database unreachable (%s); waiting for it", self.job_id, exc)
                if await database.wait_until_reachable(self.ledger.database):
                    quick_retries = 0
                else:
                    quick_retries += 1
                    await asyncio.sleep(RECEIVE_SLICE * quick_retries)

    async def _run_or_lose(self) -> None:
        try:
            await self._run()
        except BackendLost as lost:
            await self._lose(lost)

    async def _fail_internal(self, exc: Exception) -> None:
        await self.ledger.fail(
            self.job_id,
            self.attempt.attempt_id,
            {
                "type": "internal",
                "message": f"internal error: {type(exc).__name__}",
                "retryable": True,
            },
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self.client.connect(self.attempt.attempt_id) as socket:
                    self._touch()
                    if self._submitted or self._ambiguous:
                        entry, alive = await self._probe()
                        if entry is not None:
                            await self._finish(entry)
                            return
                        self._submitted = self._submitted or alive
                        if not alive and self._submitted:
                            await self._vanished()
                            return
                    if not self._submitted:
                        if self.cancel.is_set():
                            await self.ledger.cancelled(self.job_id, self.attempt.attempt_id)
                            return
                        self._ambiguous = True
                        if not await self._submit():
                            return
                        self._submitted, self._ambiguous = True, False
                    entry = await self._follow(socket)
                    if entry is not None:
                        await self._finish(entry)
                    return
            except BackendUnavailable as exc:
                if time.monotonic() - self._contact > self.settings.backend_lost_timeout:
                    raise BackendLost(str(exc.detail)) from exc
                await asyncio.sleep(min(1.0, self.settings.check_interval))

    def _touch(self) -> None:
        self._contact = time.monotonic()

    async def _submit(self) -> bool:
        try:
            # Input files (uploads, URLs, earlier outputs) go to this backend first.
            graph = await prepare_inputs(
                self.attempt.graph, self.backend, self.ledger, self.store, job_id=self.job_id
            )
            await self.client.submit(
                graph,
                prompt_id=self.attempt.attempt_id,
                client_id=self.attempt.attempt_id,
            )
        except PromptRejected as rejected:
            log.warning("ComfyUI rejected the prompt: %s", rejected.detail)
            await self.ledger.fail(self.job_id, self.attempt.attempt_id, rejection_error(rejected))
            return False
        log.info("submitted as prompt %s", self.attempt.attempt_id)
        self._touch()
        return True

    async def _follow(self, socket: ComfySocket) -> HistoryEntry | None:
        """Follow the socket until the prompt ends; returns its history entry."""
        silent_since = time.monotonic()
        while True:
            if self.cancel.is_set() and not self._cancel_sent:
                await self._send_cancel()
            if self.move_target is not None and await self._try_move():
                return None
            message = await socket.receive(timeout=RECEIVE_SLICE)
            if message is None:
                if time.monotonic() - silent_since < self.settings.check_interval:
                    continue
                silent_since = time.monotonic()
                entry, alive = await self._probe()
                if entry is not None:
                    return entry
                if not alive:
                    await self._vanished()
                    return None
                if not self._cancel_sent and await self.ledger.cancel_requested(self.job_id):
                    self.cancel.set()
                continue
            silent_since = time.monotonic()
            self._touch()
            if not _is_ours(message, self.attempt.attempt_id):
                continue
            if not self.started:
                self.started = True
                await self.ledger.execution_started(self.job_id, self.attempt.attempt_id)
            if isinstance(message, m.Executing) and message.data.node is None:
                self._tracker.end()
                entry = await self._confirm()
                if entry is not None:
                    return entry
                continue
            if self._tracker.feed(message):
                await self._report_progress()

    async def _try_move(self) -> bool:
        """Take the prompt out of this backend's queue and hand the job to the target,
        unless ComfyUI started it meanwhile. True if the job moved (this runner is done).
        """
        target, self.move_target = self.move_target, None
        assert target is not None
        moved: str | None = None
        try:
            if not self.started:
                await self.client.delete_pending([self.attempt.attempt_id])
                entry, alive = await self._probe()
                if entry is None and not alive:
                    # Gone from the queue and never run: it can run elsewhere, once.
                    moved = await self.ledger.transfer(self.job_id, self.attempt.attempt_id, target)
                    if moved is None:
                        await self.ledger.cancelled(self.job_id, self.attempt.attempt_id)
                        return True
        finally:
            self.on_move(self, target, moved)
        return moved is not None

    async def _probe(self) -> tuple[HistoryEntry | None, bool]:
        """(history entry, still queued or running). Queue first: ComfyUI writes history
        before it drops a prompt from the queue, so this order cannot miss a finish."""
        queue = await self.client.queue()
        self._touch()
        if self.attempt.attempt_id in queue:
            return None, True
        return await self.client.history(self.attempt.attempt_id), False

    async def _confirm(self) -> HistoryEntry | None:
        delay = 0.02
        for _ in range(12):
            entry = await self.client.history(self.attempt.attempt_id)
            if entry is not None:
                return entry
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        return None

    async def _report_progress(self, *, stage: str | None = None) -> None:
        # At most one progress event per progress_interval: each is a row and a message
        # to every subscriber, and a sampler can report hundreds of steps a second. A
        # stage change always goes out (the last step/max of a job is written with it).
        now = time.monotonic()
        if stage is None and now - self._last_progress_at < self.settings.progress_interval:
            return
        self._last_progress_at = now
        snapshot = self._tracker.snapshot(stage)
        await self.ledger.progress(self.job_id, self.attempt.attempt_id, snapshot)

    async def _send_cancel(self) -> None:
        # Pending in ComfyUI's queue: delete it. Running: a targeted interrupt, which lands
        # at the next node boundary or sampler step. Either way the end is confirmed later.
        try:
            await self.client.delete_pending([self.attempt.attempt_id])
            await self.client.interrupt(self.attempt.attempt_id)
        except BackendProtocolError as exc:
            # Sent but refused: the prompt ends however ComfyUI ends it, and the job
            # with it; asking again on every loop would not change the answer.
            log.warning("cancel of job %s refused by %s: %s", self.job_id, self.backend.name, exc)
        self._cancel_sent = True

    async def _vanished(self) -> None:
        if self._cancel_sent or self.cancel.is_set():
            await self.ledger.cancelled(self.job_id, self.attempt.attempt_id)
            return
        raise BackendLost(
            f"backend {self.backend.name} no longer knows prompt {self.attempt.attempt_id} "
            "(it restarted)",
            backend_down=False,
        )

    async def _finish(self, entry: HistoryEntry) -> None:
        interrupted = entry.message("execution_interrupted")
        error = entry.message("execution_error")
        if entry.status_str == "success" or (entry.completed and not error and not interrupted):
            learn(self.backend.node_seconds, self._tracker.timings())
            await self._report_progress(stage="storing outputs")
            try:
                outputs = await collect_outputs(self.client, entry, self.store)
            except BackendProtocolError as exc:
                await self.ledger.fail(
                    self.job_id,
                    self.attempt.attempt_id,
                    {"type": "output_missing", "message": exc.detail, "retryable": True},
                )
                return
            await self.ledger.complete(
                self.job_id, self.attempt.attempt_id, outputs, owner=self.attempt.owner
            )
            log.info("completed with %d outputs", len(outputs))
            return
        if interrupted is not None:
            if self._cancel_sent or self.cancel.is_set():
                await self.ledger.cancelled(self.job_id, self.attempt.attempt_id)
                return
            error_body = {
                "type": "interrupted",
                "message": "interrupted on the backend by someone other than Atelier",
                "node_id": interrupted.get("node_id"),
                "node_type": interrupted.get("node_type"),
                "retryable": True,
            }
        else:
            error_body = node_error(error or {})
        log.warning("failed: %s: %s", error_body["type"], error_body["message"])
        await self.ledger.fail(self.job_id, self.attempt.attempt_id, error_body)

    async def _lose(self, lost: BackendLost) -> None:
        log.warning("job %s lost backend %s: %s", self.job_id, self.backend.name, lost.reason)
        if lost.backend_down:
            self.pool.report_lost(self.backend, lost.reason)
        status = await self.ledger.requeue(
            self.job_id,
            self.attempt.attempt_id,
            lost.reason,
            max_attempts=self.settings.max_attempts,
        )
        if status == JobStatus.QUEUED and lost.backend_down:
            # If the backend comes back, it must not run this attempt as well.
            with contextlib.suppress(TimeoutError, BackendError):
                await asyncio.wait_for(self._send_cancel(), timeout=1.0)


def _is_ours(message: m.Message, attempt_id: str) -> bool:
    data = getattr(message, "data", None)
    return getattr(data, "prompt_id", None) == attempt_id


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\- ]+){2,}[\\/]?")


def scrub(text: str) -> str:
    """Remove server paths from a message shown to clients (keep the file's name)."""
    return _PATH.sub(lambda match: re.split(r"[\\/]", match.group(0).rstrip("/\\"))[-1], text)


def node_error(data: dict[str, Any]) -> dict[str, Any]:
    exception_type = str(data.get("exception_type") or "")
    out_of_memory = (
        "OutOfMemory" in exception_type
        or "out of memory" in str(data.get("exception_message", "")).lower()
    )
    return {
        "type": "out_of_memory" if out_of_memory else "node_error",
        "message": scrub(str(data.get("exception_message") or "node failed")).strip(),
        "node_id": data.get("node_id"),
        "node_type": data.get("node_type"),
        "exception_type": exception_type or None,
        "retryable": out_of_memory,
    }


def rejection_error(rejected: PromptRejected) -> dict[str, Any]:
    details = []
    for node_id, node in (rejected.node_errors or {}).items():
        for error in (node or {}).get("errors", []):
            details.append(
                {
                    "node_id": node_id,
                    "node_type": node.get("class_type"),
                    "input": (error.get("extra_info") or {}).get("input_name"),
                    "reason": scrub(f"{error.get('message', '')}: {error.get('details', '')}"),
                }
            )
    return {
        "type": "validation_error",
        "message": scrub(str(rejected.error.get("message") or rejected.detail)),
        "details": details,
        "retryable": False,
    }
