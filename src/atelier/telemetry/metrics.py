"""Prometheus metrics for one app, in a registry of its own (tests build many apps).

Two kinds of figures. Gauges of state (jobs by status, queue depth, backends, VRAM,
subscribers, the webhook backlog) are read when Prometheus scrapes: the database counts
are refreshed by the /metrics route just before rendering, the in-memory ones are read
by a custom collector. Distributions (queue wait and execution time per workflow, HTTP
latency per route) are observed as things happen: a consumer of the event bus reads a
job's times once it ends, and an ASGI middleware times every request under its route
template (``/api/v1/jobs/{job_id}``, never the raw path, so ids do not explode the
label set).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atelier import events
from atelier.db.operations import OperationsRepository
from atelier.db.repositories import JobRepository

if TYPE_CHECKING:
    from atelier.runtime import Runtime

log = logging.getLogger("atelier.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from a quick image on a warm GPU to a long video segment.
JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FINISHED = {events.COMPLETED, events.FAILED, events.CANCELLED}
# Jobs ending within this many seconds of each other have their timings read together.
OBSERVE_WINDOW = 0.5
RAW_GRAPH = "graph"  # the workflow label of a job submitted as a raw graph


class Metrics:
    """Everything /metrics shows for one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue_wait = Histogram(
            "atelier_job_queue_wait_seconds",
            "Seconds from submit until ComfyUI started the job, per workflow.",
            ["workflow"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.execution = Histogram(
            "atelier_job_execution_seconds",
            "Seconds from execution start to the end (outputs stored), per workflow and outcome.",
            ["workflow", "status"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "atelier_http_request_duration_seconds",
            "HTTP request latency by route template (streams: until the headers are sent).",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "atelier_http_requests",
            "HTTP requests by route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.state = StateCollector()
        self.registry.register(self.state)
        self._consumer: asyncio.Task[None] | None = None

    def start(self, runtime: Runtime) -> None:
        self.state.runtime = runtime
        self._consumer = asyncio.create_task(self._consume(runtime), name="metrics-consumer")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)

    async def render(self, runtime: Runtime) -> bytes:
        """The exposition text, with the database counts read now."""
        async with runtime.database.transaction() as session:
            operations = OperationsRepository(session)
            self.state.jobs = await JobRepository(session).count_by_status()
            self.state.queued = await operations.queued_by_priority()
            self.state.deliveries = await operations.deliveries_by_status()
        # This process's backends, or in the cluster shape every worker's.
        self.state.backends = await runtime.dispatcher.describe_backends()
        return generate_latest(self.registry)

    async def _consume(self, runtime: Runtime) -> None:
        """Observe each finished job's queue wait and execution time. The jobs that end
        within ``OBSERVE_WINDOW`` of each other are read in one transaction."""
        async with runtime.bus.subscribe() as subscription:
            while True:
                ended: dict[str, str] = {}
                deadline: float | None = None
                while deadline is None or (left := deadline - time.monotonic()) > 0:
                    try:
                        if deadline is None:
                            event = await subscription.queue.get()
                        else:
                            async with asyncio.timeout(left):
                                event = await subscription.queue.get()
                    except TimeoutError:
                        break
                    if subscription.lagged:  # some were missed; the gauges stay exact
                        subscription.lagged = False
                        log.warning("metrics fell behind the event stream; some timings skipped")
                    if event.type in FINISHED:
                        ended[event.job_id] = event.type
                        deadline = deadline or time.monotonic() + OBSERVE_WINDOW
                try:
                    await self._observe(runtime, ended)
                except Exception:
                    log.exception("could not record the timings of %d jobs", len(ended))

    async def _observe(self, runtime: Runtime, ended: dict[str, str]) -> None:
        async with runtime.database.transaction() as session:
            timings = await OperationsRepository(session).timings(ended)
        for job_id, status in ended.items():
            job = timings.get(job_id)
            if job is None or job.started_at is None:
                continue  # cancelled while queued: it never waited its turn to the end
            workflow = job.workflow or RAW_GRAPH
            self.queue_wait.labels(workflow).observe(
                max(0.0, (job.started_at - job.created_at).total_seconds())
            )
            if job.finished_at is not None:
                seconds = (job.finished_at - job.started_at).total_seconds()
                self.execution.labels(workflow, status).observe(max(0.0, seconds))


class StateCollector(Collector):
    """Gauges read at scrape time from the runtime and the last database counts."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.jobs: dict[str, int] = {}
        self.queued: dict[int, int] = {}
        self.deliveries: dict[str, int] = {}
        self.backends: list[dict[str, Any]] = []

    def describe(self) -> Iterator[Metric]:
        return iter(())  # state is dynamic: do not collect at registration

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("atelier_jobs", "Jobs by status.", labels=["status"])
        for status, count in sorted(self.jobs.items()):
            jobs.add_metric([status], count)
        yield jobs
        depth = GaugeMetricFamily(
            "atelier_queue_depth", "Queued jobs by priority.", labels=["priority"]
        )
        for priority, count in sorted(self.queued.items()):
            depth.add_metric([str(priority)], count)
        yield depth
        deliveries = GaugeMetricFamily(
            "atelier_webhook_deliveries",
            "Webhook deliveries by result: pending (the backlog), delivered, failed.",
            labels=["result"],
        )
        for result, count in sorted(self.deliveries.items()):
            deliveries.add_metric([result], count)
        yield deliveries
        runtime = self.runtime
        if runtime is None:
            return
        yield from _backend_metrics(self.backends)
        published = CounterMetricFamily(
            "atelier_events_published", "Job events published, by type.", labels=["type"]
        )
        for type_, count in sorted(runtime.bus.published.items()):
            published.add_metric([type_], count)
        yield published
        subscribers = GaugeMetricFamily(
            "atelier_event_subscribers",
            "Live event subscriptions by kind: stream (SSE and WebSocket clients), wait "
            "(Prefer: wait requests), internal (webhooks, metrics).",
            labels=["kind"],
        )
        counts = runtime.bus.subscribers_by_kind()
        for kind in ("stream", "wait", "internal"):
            subscribers.add_metric([kind], counts.get(kind, 0))
        yield subscribers


def _backend_metrics(backends: list[dict[str, Any]]) -> Iterator[Metric]:
    """From ``Dispatcher.describe_backends``: a single node's backends, a cluster's workers."""
    labels = ["backend"]
    up = GaugeMetricFamily("atelier_backend_up", "1 if the backend takes work.", labels=labels)
    busy = GaugeMetricFamily(
        "atelier_backend_busy_ratio", "Jobs in flight over slots (0..1).", labels=labels
    )
    free = GaugeMetricFamily(
        "atelier_backend_vram_free_bytes", "Free VRAM (first device).", labels=labels
    )
    total = GaugeMetricFamily(
        "atelier_backend_vram_total_bytes", "Total VRAM (first device).", labels=labels
    )
    loads = CounterMetricFamily(
        "atelier_backend_model_loads",
        "Jobs sent to the backend with another checkpoint than the one it held.",
        labels=labels,
    )
    for backend in backends:
        name = [str(backend["name"])]
        up.add_metric(name, 1.0 if backend["status"] in ("up", "degraded") else 0.0)
        in_flight = backend.get("queue_length") or 0
        busy.add_metric(name, min(1.0, in_flight / max(1, backend.get("slots") or 1)))
        if isinstance(backend.get("vram_free"), int | float):
            free.add_metric(name, float(backend["vram_free"]))
        if isinstance(backend.get("vram_total"), int | float):
            total.add_metric(name, float(backend["vram_total"]))
        if isinstance(backend.get("model_loads"), int):  # counted where the scheduler runs
            loads.add_metric(name, backend["model_loads"])
    yield from (up, busy, free, total, loads)


class RequestMetrics:
    """Times every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        async def timed_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                self._record(scope, int(message["status"]), time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not recorded:  # the app raised before answering: the server answers 500
                self._record(scope, 500, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        self.metrics.http_latency.labels(method, route).observe(seconds)
        self.metrics.http_requests.labels(method, route, str(status)).inc()
