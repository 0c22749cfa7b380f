"""The ``atelier`` command: run the server, a fake ComfyUI, and talk to a server.

Server commands fill in a Settings object from their flags; client commands read the
server's address from ``--url`` or ``ATELIER_URL``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import mimetypes
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from atelier import __version__, cli_sdk, cli_studio, logs
from atelier.auth.cli import keys_app

app = typer.Typer(help="Atelier: a production job API for ComfyUI.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")  # atelier keys create | list | revoke
cli_sdk.register(app)  # atelier workflows list | show, run, download (on the SDK)
cli_studio.register(app)  # atelier projects, generate, runs (the studio, on the SDK)
console = Console()
err = Console(stderr=True)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="ATELIER_URL", help="The Atelier server (env ATELIER_URL)."),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def main() -> None:
    import httpx

    try:
        app()
    except httpx.TransportError as exc:  # the server is down or the URL is wrong: one line
        err.print(
            f"[red]error:[/red] cannot reach Atelier ({type(exc).__name__}: {exc}); is "
            f"`atelier serve` running there? (--url or ATELIER_URL, default {DEFAULT_URL})",
            soft_wrap=True,
        )
        raise SystemExit(1) from None


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the database and files live.")
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(help="A ComfyUI URL (repeatable); name=URL names it."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (default SQLite).")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Start a fake ComfyUI in-process.")] = False,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning")] = None,
    log_format: Annotated[
        str | None, typer.Option(help="text, or json: one object per line (docs/OPERATIONS.md)")
    ] = None,
) -> None:
    """Start the API server (SQLite and local files unless told otherwise)."""
    import uvicorn

    from atelier.app import create_app, freeze_heap_after_start
    from atelier.settings import Settings

    settings = Settings.from_options(
        host=host,
        port=port,
        data_dir=data_dir,
        backends=backend,
        database_url=database_url,
        demo=demo,
        log_level=log_level,
        log_format=log_format,
    )
    logs.configure(settings.log_level, settings.log_format)
    console.print(
        f"[bold]Atelier {__version__}[/bold] on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir.resolve()}, docs: /docs)"
    )
    app = create_app(settings)
    freeze_heap_after_start(app)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # logs.configure above: one format for every line
        # httptools (uvicorn[standard]); a line per request only at debug level.
        loop=settings.event_loop,
        http="httptools",
        access_log=settings.log_level.lower() == "debug",
    )


@app.command()
def worker(
    comfyui: Annotated[str, typer.Option(help="This GPU box's ComfyUI URL.")],
    name: Annotated[
        str | None, typer.Option(help="Worker name (default: the ComfyUI's host:port).")
    ] = None,
    slots: Annotated[
        int, typer.Option(min=1, help="Jobs in flight on this ComfyUI (1 running + pipelined).")
    ] = 2,
    database_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL (env ATELIER_DATABASE_URL).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run jobs of a cluster on one ComfyUI (docs/CLUSTER.md); stops on SIGTERM/Ctrl-C."""
    import signal

    from atelier.dispatch.backends import parse_backend
    from atelier.dispatch.worker import Worker
    from atelier.settings import Settings

    settings = Settings.from_options(database_url=database_url)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    worker_name = name or parse_backend(comfyui)[0]
    try:
        process = Worker(settings, comfyui=comfyui, name=worker_name, slots=slots)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await process.run_until_stopped(stop)

    console.print(f"[bold]Atelier worker {worker_name}[/bold] on {comfyui} ({slots} slots)")
    asyncio.run(run())


@app.command("fake-comfyui")
def fake_comfyui(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8188,
    step_time: Annotated[float, typer.Option(help="Seconds per simulated sampler step.")] = 0.05,
    node_time: Annotated[float, typer.Option(help="Extra seconds for every executed node.")] = 0.0,
    model_load_time: Annotated[
        float, typer.Option(help="Seconds charged when the checkpoint changes.")
    ] = 0.0,
    vram_gb: Annotated[float, typer.Option(help="VRAM reported by /system_stats.")] = 24.0,
    root_dir: Annotated[Path | None, typer.Option(help="Holds input/ output/ temp/.")] = None,
    # Chaos testing (h11): faults switch on at runtime over POST /fake/fault.
    name: Annotated[str, typer.Option(help="Its name in the execution log.")] = "fake",
    view_delay: Annotated[float, typer.Option(help="Seconds before each /view answer.")] = 0.0,
    execution_log: Annotated[
        Path | None, typer.Option(help="Append a JSON line per prompt start and end here.")
    ] = None,
) -> None:
    """Run the protocol-faithful fake ComfyUI (no GPU, no models) for tests and demos.

    Faults switch on at runtime: curl -X POST URL/fake/fault -d '{"errors": true,
    "for_seconds": 5}' (also hang, view_delay, drop_websockets)."""
    from atelier.testing import run_fake_comfyui

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_fake_comfyui(
                host=host,
                port=port,
                step_time=step_time,
                node_time=node_time,
                model_load_time=model_load_time,
                root_dir=root_dir,
                vram_total=int(vram_gb * 1024**3),
                name=name,
                view_delay=view_delay,
                execution_log=execution_log,
            )
        )


def _client(url: str):  # type: ignore[no-untyped-def]
    from atelier.client import AtelierClient

    return AtelierClient(url, api_key=os.environ.get("ATELIER_API_KEY"))


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def submit(
    graph: Annotated[
        Path | None, typer.Option(help="A ComfyUI graph (JSON file, API or UI format).")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Run a workflow template by name instead.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="A workflow parameter, name=value (repeatable); name=@file for images."),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="A named preset of the workflow.")] = None,
    priority: Annotated[int, typer.Option()] = 0,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Submit a graph or a workflow; prints the job id (or follows it with --wait)."""
    from atelier.client import AtelierError

    if (graph is None) == (workflow is None):
        raise _fail(ValueError("give --graph FILE or --workflow NAME (with --param k=v)"))
    body: Any = None
    params: dict[str, Any] = {}
    try:
        if graph is not None:
            body = json.loads(graph.read_text())
            if isinstance(body, dict) and isinstance(body.get("prompt"), dict):
                body = body["prompt"]  # a saved POST /prompt body
        params = dict(_param(item) for item in param or [])
    except (OSError, ValueError) as exc:
        raise _fail(exc) from exc
    with _client(url) as client:
        try:
            if workflow is not None:
                job = client.submit(
                    workflow=workflow, params=params, preset=preset, priority=priority
                )
            else:
                job = client.submit(body, priority=priority)
        except AtelierError as exc:
            for problem in exc.problem.get("errors", []):
                where = problem.get("field") or (
                    f"node {problem.get('node_id')} {problem.get('input') or ''}".strip()
                )
                err.print(f"  {where}: {problem.get('reason')}")
            raise _fail(exc) from exc
        console.print(job["id"])
        for warning in job.get("warnings") or []:
            err.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        if wait:
            _watch(client, job["id"])


def _param(item: str) -> tuple[str, Any]:
    """name=value: numbers, true/false, null and JSON lists/objects are read as JSON,
    anything else is a string; name=@path sends the file (an image) as a data: URI."""
    name, sep, text = item.partition("=")
    if not sep or not name:
        raise ValueError(f"--param {item!r} is not name=value")
    if text.startswith("@"):
        path = Path(text[1:])
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return name, f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
    if text in ("true", "false", "null") or (text[:1] in "[{-0123456789" and text):
        try:
            return name, json.loads(text)
        except ValueError:
            pass
    return name, text


@app.command()
def watch(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Follow a job with a progress bar until it ends (a job id or a ComfyUI prompt id)."""
    from atelier.client import AtelierError

    with _client(url) as client:
        try:
            job_id = client.job(job_id)["id"]  # an unknown id is one line, not a bar
        except AtelierError as exc:
            raise _fail(exc) from exc
        _watch(client, job_id)


def _watch(client: Any, job_id: str) -> None:
    from atelier.client import AtelierError

    status = "queued"
    with Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[node]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("job", total=1.0, status=status, node="")
        try:
            for event in client.events(job_id):
                data = event.get("data", {})
                if event["type"] == "progress":
                    node = data.get("stage") or f"node {data.get('node')}"
                    node += f" ({data.get('node_type') or '?'})"
                    max_steps = data.get("max_steps", data.get("max"))
                    if max_steps:
                        node += f" step {data.get('step')}/{max_steps}"
                    if data.get("eta_seconds") is not None:
                        node += f", about {data['eta_seconds']:.0f}s left"
                    bar.update(task, completed=data.get("progress", 0), node=node)
                elif "status" in data:
                    status = data["status"]
                    bar.update(task, status=status)
                if event["type"] == "completed":
                    bar.update(task, completed=1.0, node="")
        except AtelierError as exc:
            raise _fail(exc) from exc
    job = client.job(job_id)
    console.print(f"job {job_id}: [bold]{job['status']}[/bold]")
    for output in job["outputs"]:
        size = f" {output['width']}x{output['height']}" if output.get("width") else ""
        console.print(f"  {output['kind']} {output['filename']}{size}", soft_wrap=True)
        typer.echo(output["url"])  # alone on its line, never wrapped: easy to copy or pipe
    if job.get("error"):
        error = job["error"]
        console.print(f"  [red]{error['type']}[/red]: {error['message']}")
    if job["status"] != "completed":
        raise typer.Exit(code=1)


@app.command("jobs")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="Filter by status.")] = None,
    limit: Annotated[int, typer.Option()] = 20,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """List recent jobs."""
    from atelier.client import AtelierError

    with _client(url) as client:
        try:
            page = client.jobs(status=status, limit=limit)
        except AtelierError as exc:
            raise _fail(exc) from exc
    # An id is for copying: never cut or folded, whatever the terminal's width; the
    # light box leaves the other columns room on an 80-column terminal.
    table = Table(
        Column("id", no_wrap=True, min_width=36),
        Column("status", no_wrap=True),
        Column("backend", no_wrap=True),
        Column("created", no_wrap=True),
        Column("files", no_wrap=True),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for job in page["items"]:
        table.add_row(
            job["id"],
            job["status"]
            + (f" {job['progress'] * 100:.0f}%" if job["status"] == "running" else ""),
            job["backend"] or "",
            job["created_at"][5:16].replace("T", " "),
            str(len(job["outputs"])),
        )
    console.print(table)


@app.command()
def cancel(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Cancel a job."""
    from atelier.client import AtelierError

    with _client(url) as client:
        try:
            job = client.cancel(job_id)
        except AtelierError as exc:
            raise _fail(exc) from exc
    note = " (cancel requested; waiting for the backend)" if job["status"] == "running" else ""
    console.print(f"job {job_id}: {job['status']}{note}")


@app.command()
def backends(url: UrlOption = DEFAULT_URL) -> None:
    """List the ComfyUI backends and their health."""
    from atelier.client import AtelierError

    with _client(url) as client:
        try:
            items = client.backends()
        except AtelierError as exc:
            raise _fail(exc) from exc
    table = Table("name", "url", "status", "vram free/total", "jobs", "last error")
    for b in items:
        vram = ""
        if b.get("vram_total"):
            vram = f"{(b.get('vram_free') or 0) / 2**30:.1f}/{b['vram_total'] / 2**30:.1f} GiB"
        table.add_row(
            b["name"], b["url"], b["status"], vram, str(b["queue_length"]), b["last_error"] or ""
        )
    console.print(table)


@app.command()
def migrate(
    database_url: Annotated[str | None, typer.Option()] = None,
    data_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Apply database migrations (serve does this on start too)."""
    from atelier.db.database import Database
    from atelier.settings import Settings

    settings = Settings.from_options(database_url=database_url, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        database = Database(settings.resolved_database_url)
        try:
            await database.migrate()
        finally:
            await database.close()

    asyncio.run(run())
    console.print("database is up to date")
