"""The MCP tools, written once over the SDK (``AsyncAtelier``).

Every tool reaches Atelier through a ``Connect`` callable that yields an SDK client for
the request at hand: over stdio, a client of the configured URL and key; over HTTP, a
client of this very app that carries the caller's own key, so the API's auth, scopes,
limits and owner isolation apply to every tool call exactly as to a direct request.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from atelier import __version__
from atelier.client import AsyncAtelier, AtelierError, Job, WaitTimeout, WorkflowDetail

Connect = Callable[[Context], AbstractAsyncContextManager[AsyncAtelier]]
ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])

# Images larger than this are listed by URL instead of sent inline to the model.
MAX_INLINE_IMAGE_BYTES = 8 * 1024 * 1024
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})

INSTRUCTIONS = (
    "Atelier runs ComfyUI workflows as durable jobs. Call list_workflows to see what can "
    "run and each workflow's parameters, submit_workflow to start a job, wait_for_job "
    "until it ends, and get_outputs to see its images. In a studio project, generate "
    "makes a still or a video (by segments) and get_run follows it."
)


def parameters_of(detail: WorkflowDetail) -> dict[str, Any]:
    """A workflow's parameters, as compact as a model needs them."""
    schema = detail.parameters_schema
    required = set(schema.get("required") or [])
    params: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if "x-media" in prop:
            entry: dict[str, Any] = {"type": f"{prop['x-media']} (artifact id or https URL)"}
        else:
            entry = {"type": prop.get("type", "any")}
            for key in ("default", "enum", "minimum", "maximum"):
                if prop.get(key) is not None:
                    entry[key] = prop[key]
        if prop.get("description"):
            entry["description"] = prop["description"]
        if name in required:
            entry["required"] = True
        params[name] = entry
    return params


def job_summary(job: Job) -> dict[str, Any]:
    """What a model needs of a job: status, progress, outputs, error."""
    summary: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "progress": round(job.progress, 3),
        "workflow": job.workflow,
        "queue_position": job.queue_position,
        "backend": job.backend,
        "outputs": [
            {"id": a.id, "kind": a.kind, "filename": a.filename, "url": a.url} for a in job.outputs
        ],
    }
    if job.step is not None and job.max_steps:
        summary["step"] = f"{job.step}/{job.max_steps}"
    if job.error is not None:
        summary["error"] = {"type": job.error.type, "message": job.error.message}
    if job.params is not None:
        summary["params"] = job.params
    return summary


def build_server(connect: Connect) -> MCPServer:
    server: MCPServer = MCPServer(
        "atelier", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    def tool(function: ToolFunction) -> ToolFunction:
        """Register a tool; its docstring, dedented, is what the model reads."""
        return server.tool(description=inspect.cleandoc(function.__doc__ or ""))(function)

    @tool
    async def list_workflows(ctx: Context) -> list[dict[str, Any]]:
        """Every workflow Atelier can run, with its parameters (type, default, allowed
        values, which are required) and the kinds of output it makes."""
        async with _calling(connect, ctx) as atelier:
            names = [w.name for w in await atelier.workflows()]
            details = await asyncio.gather(*(atelier.workflow(n) for n in names))
        return [
            {
                "name": d.name,
                "description": d.description,
                "outputs": d.outputs,
                "parameters": parameters_of(d),
                "presets": sorted(d.presets),
                "runnable_now": any(b.can_run for b in d.backends),
            }
            for d in details
        ]

    @tool
    async def submit_workflow(
        ctx: Context,
        workflow: Annotated[str, Field(description="A workflow name from list_workflows")],
        params: Annotated[
            dict[str, Any] | None, Field(description="The workflow's parameters")
        ] = None,
        preset: Annotated[str | None, Field(description="A named parameter set")] = None,
        priority: Annotated[int, Field(ge=-1000, le=1000)] = 0,
    ) -> dict[str, Any]:
        """Start a job that runs the workflow; answers the job (its id, status). A wrong
        parameter is refused with the parameter's name and the reason."""
        async with _calling(connect, ctx) as atelier:
            job = await atelier.submit(
                workflow=workflow, params=params or {}, preset=preset, priority=priority
            )
        return job_summary(job)

    @tool
    async def get_job(ctx: Context, job_id: str) -> dict[str, Any]:
        """A job's status, progress, outputs (ids, kinds, URLs) and error."""
        async with _calling(connect, ctx) as atelier:
            return job_summary(await atelier.job(job_id))

    @tool
    async def wait_for_job(
        ctx: Context,
        job_id: str,
        timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 120,
    ) -> dict[str, Any]:
        """Wait until the job ends (completed, failed or cancelled), at most
        timeout_seconds; answers the job, still running if the time ran out."""
        async with _calling(connect, ctx) as atelier:
            try:
                # The SDK stops at the deadline over a network; in-process (/mcp) the
                # event stream arrives whole, so this bounds it.
                async with asyncio.timeout(timeout_seconds + 1):
                    job = await atelier.wait(job_id, timeout=timeout_seconds)
            except WaitTimeout as exc:
                job = exc.job
            except TimeoutError:
                job = await atelier.job(job_id)
            return job_summary(job)

    @tool
    async def get_outputs(ctx: Context, job_id: str) -> list[Image | str]:
        """A job's outputs: images as images, everything else (and images too large to
        send) as a line with its kind and download URL."""
        async with _calling(connect, ctx) as atelier:
            job = await atelier.job(job_id)
            content: list[Image | str] = [
                f"job {job.id} is {job.status}; {len(job.outputs)} output(s)"
            ]
            for artifact in job.outputs:
                inline = (
                    artifact.content_type in INLINE_TYPES
                    and artifact.size <= MAX_INLINE_IMAGE_BYTES
                )
                if inline:
                    data = await atelier.download(artifact)
                    content.append(Image(data=data, format=artifact.content_type.split("/")[1]))
                else:
                    content.append(f"{artifact.kind} {artifact.filename}: {artifact.url}")
            return content

    from atelier.mcp import studio_tools  # here: it imports this module

    studio_tools.register(tool, connect)  # generate, get_run
    return server


@asynccontextmanager
async def _calling(connect: Connect, ctx: Context) -> AsyncIterator[AsyncAtelier]:
    """An SDK client for one tool call; SDK errors become tool errors a model can read
    (the problem's detail and each field's reason)."""
    try:
        async with connect(ctx) as atelier:
            yield atelier
    except AtelierError as exc:
        raise ToolError(_message(exc)) from exc


def _message(exc: AtelierError) -> str:
    lines = [str(exc)]
    for problem in exc.problem.get("errors") or []:
        where = problem.get("field") or f"node {problem.get('node_id')} {problem.get('input')}"
        lines.append(f"{where}: {problem.get('reason')}")
    return "\n".join(lines)
