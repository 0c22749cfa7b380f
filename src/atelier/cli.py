"""The ``atelier`` command: run the server, a fake ComfyUI, and talk to a server.

Server commands fill in a Settings object from their flags; client commands read the
server's address from ``--url`` or ``ATELIER_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atelier import __version__
from atelier.auth.cli import keys_app

app = typer.Typer(help="Atelier: a production job API for ComfyUI.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")  # atelier keys create | list | revoke
console = Console()
err = Console(stderr=True)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="ATELIER_URL", help="The Atelier server (env ATELIER_URL)."),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def main() -> None:
    app()


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
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Start the API server (SQLite and local files unless told otherwise)."""
    import uvicorn

    from atelier.app import create_app
    from atelier.settings import Settings

    settings = Settings.from_options(
        host=host,
        port=port,
        data_dir=data_dir,
        backends=backend,
        database_url=database_url,
        demo=demo,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    console.print(
        f"[bold]Atelier {__version__}[/bold] on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir.resolve()}, docs: /docs)"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # uvloop and httptools (uvicorn[standard]); a line per request only when asked for.
        loop="uvloop",
        http="httptools",
        access_log=log_level.lower() in ("debug", "info"),
    )


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
) -> None:
    """Run the protocol-faithful fake ComfyUI (no GPU, no models) for tests and demos."""
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
            )
        )


def _client(url: str):  # type: ignore[no-untyped-def]
    from atelier.client import AtelierClient

    return AtelierClient(url, api_key=os.environ.get("ATELIER_API_KEY"))


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


@app.command()
def submit(
    graph: Annotated[Path, typer.Option(help="A ComfyUI API-format graph (JSON file).")],
    priority: Annotated[int, typer.Option()] = 0,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Submit a graph; prints the job id (or follows it with --wait)."""
    from atelier.client import AtelierError

    try:
        body = json.loads(graph.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(exc) from exc
    if isinstance(body, dict) and "prompt" in body and isinstance(body["prompt"], dict):
        body = body["prompt"]  # a saved POST /prompt body
    with _client(url) as client:
        try:
            job = client.submit(body, priority=priority)
        except AtelierError as exc:
            for problem in exc.problem.get("errors", []):
                where = f"node {problem.get('node_id')} {problem.get('input') or ''}".strip()
                err.print(f"  {where}: {problem.get('reason')}")
            raise _fail(exc) from exc
        console.print(job["id"])
        if wait:
            _watch(client, job["id"])


@app.command()
def watch(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Follow a job with a progress bar until it ends."""
    with _client(url) as client:
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
                    node = f"node {data.get('node')} {data.get('node_type') or ''}"
                    if data.get("max"):
                        node += f" step {data.get('step')}/{data.get('max')}"
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
        console.print(f"  {output['kind']:<6} {output['filename']}  {output['url']}")
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
    table = Table("id", "status", "progress", "backend", "created", "outputs")
    for job in page["items"]:
        table.add_row(
            job["id"],
            job["status"],
            f"{job['progress'] * 100:.0f}%",
            job["backend"] or "",
            job["created_at"][:19],
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
