"""The CLI's commands built on the SDK (atelier.client): ``workflows list|show``, ``run``,
``download`` and ``mcp``. A server that answers a problem, or none at all, is one line
on stderr and exit code 1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from atelier.client import Atelier, AtelierError, Job, JobNotFound, WorkflowDetail

workflows_app = typer.Typer(help="List workflow templates and show their parameters.")
console = Console()
err = Console(stderr=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="ATELIER_URL", help="The Atelier server (env ATELIER_URL)."),
]


@contextmanager
def connect(url: str | None) -> Iterator[Atelier]:
    """An SDK client (key from ATELIER_API_KEY); any SDK error becomes one line, exit 1."""
    try:
        with Atelier(url, api_key=os.environ.get("ATELIER_API_KEY")) as client:
            yield client
    except AtelierError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        problems = exc.problem.get("errors") or []
        if len(problems) == 1 and str(problems[0].get("reason")) in str(exc):
            problems = []  # the line above said it all
        for problem in problems:
            where = problem.get("field") or " ".join(
                str(p) for p in ("node", problem.get("node_id"), problem.get("input")) if p
            )
            err.print(f"  {where}: {problem.get('reason')}", highlight=False)
        raise typer.Exit(code=1) from exc


@workflows_app.command("list")
def list_workflows(url: UrlOption = None) -> None:
    """Every workflow: name, version, kinds of output, parameters."""
    with connect(url) as atelier:
        items = atelier.workflows()
    table = Table("name", "version", "outputs", "parameters", "description")
    for item in items:
        table.add_row(
            item.name,
            str(item.version),
            ", ".join(item.outputs),
            ", ".join(item.parameters),
            item.description,
        )
    console.print(table)


@workflows_app.command("show")
def show_workflow(name: str, url: UrlOption = None) -> None:
    """One workflow's parameters (from its JSON Schema), presets and backends."""
    with connect(url) as atelier:
        detail = atelier.workflow(name)
    console.print(f"[bold]{detail.name}[/bold] v{detail.version}: {detail.description}")
    console.print(f"outputs: {', '.join(detail.outputs) or '-'}")
    table = Table("parameter", "type", "default", "allowed", "description")
    required = set(detail.parameters_schema.get("required") or [])
    for pname, schema in (detail.parameters_schema.get("properties") or {}).items():
        table.add_row(
            pname + (" *" if pname in required else ""),
            _type_of(schema),
            "" if schema.get("default") is None else json.dumps(schema["default"]),
            _allowed(schema),
            str(schema.get("description") or ""),
        )
    console.print(table)
    if required:
        console.print("* required")
    for preset, values in detail.presets.items():
        console.print(f"preset [bold]{preset}[/bold]: {json.dumps(values)}")
    for backend in detail.backends:
        missing = backend.missing_node_classes + backend.missing_models
        can = {True: "can run it", False: "cannot run it", None: "unknown yet"}[backend.can_run]
        console.print(
            f"backend {backend.name} ({backend.status}): {can}"
            + (f"; lacks {', '.join(missing)}" if missing else "")
        )


def _type_of(schema: dict[str, Any]) -> str:
    if "x-media" in schema:
        return f"{schema['x-media']} (file)"
    return str(schema.get("type", "any"))


def _allowed(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        choices = [str(c) for c in schema["enum"]]
        return ", ".join(choices[:8]) + (f" (+{len(choices) - 8})" if len(choices) > 8 else "")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        return f"{'' if low is None else low}..{'' if high is None else high}"
    return ""


def parse_params(atelier: Atelier, detail: WorkflowDetail, pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs typed by the workflow's schema; ``k=@file`` uploads the file and
    passes its artifact id. Unknown names and bad values are left to the server, which
    names them."""
    properties: dict[str, Any] = detail.parameters_schema.get("properties") or {}
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="--param")
        schema = properties.get(name, {})
        if text.startswith("@") and ("x-media" in schema or Path(text[1:]).is_file()):
            path = Path(text[1:])
            if not path.is_file():
                raise typer.BadParameter(f"{name}: no file {path}", param_hint="--param")
            params[name] = atelier.upload(path).id
        else:
            params[name] = _typed(text, str(schema.get("type", "")))
    return params


def _typed(text: str, json_type: str) -> Any:
    if json_type == "string":
        return text
    if json_type == "array" and not text.startswith("["):
        return [item for item in text.split(",") if item]
    try:
        return json.loads(text)
    except ValueError:
        return text  # the server says what is wrong with it


def register(app: typer.Typer) -> None:
    """Add these commands to the ``atelier`` command."""
    app.add_typer(workflows_app, name="workflows")
    app.command("run")(run)
    app.command("download")(download)
    app.command("mcp")(mcp)


def run(
    workflow: Annotated[str, typer.Argument(help="A workflow name (atelier workflows list).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="name=value (repeatable); name=@file uploads it."),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="A named parameter set.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    wait: Annotated[
        bool, typer.Option(help="Follow the job with a progress bar, then save its outputs.")
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where --wait saves the outputs.")
    ] = Path("."),
    url: UrlOption = None,
) -> None:
    """Run a workflow; prints the job id, or with --wait the paths of its outputs."""
    with connect(url) as atelier:
        detail = atelier.workflow(workflow)
        params = parse_params(atelier, detail, param or [])
        job = atelier.submit(workflow=workflow, params=params, preset=preset, priority=priority)
        if not wait:
            console.print(job.id, highlight=False)
            return
        err.print(f"job {job.id}", highlight=False)
        job = follow(atelier, job)
        _report(atelier, job, output)


def follow(atelier: Atelier, job: Job) -> Job:
    """A progress bar (on stderr) from the job's events until it ends."""
    with Progress(
        TextColumn("[bold]{task.fields[status]:<9}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[where]}"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("job", total=1.0, status=job.status, where="")
        for event in atelier.events(job.id):
            data = event.data
            if event.type == "progress":
                where = f"{data.get('node_type') or data.get('node') or ''}"
                top = data.get("max") or data.get("max_steps")
                if top:
                    where += f" step {data.get('step')}/{top}"
                bar.update(task, completed=float(data.get("progress") or 0), where=where)
            elif isinstance(data.get("status"), str):
                bar.update(task, status=data["status"])
            if event.type == "completed":
                bar.update(task, completed=1.0, where="")
    return atelier.wait(job.id)


def _report(atelier: Atelier, job: Job, output: Path) -> None:
    if job.status != "completed":
        reason = f": {job.error.type}: {job.error.message}" if job.error else ""
        err.print(f"[red]job {job.id} {job.status}[/red]{reason}", highlight=False)
        raise typer.Exit(code=1)
    for path in atelier.save_outputs(job, output):
        console.print(str(path), highlight=False, soft_wrap=True)


def download(
    id: Annotated[str, typer.Argument(help="A job id (all its outputs) or an artifact id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="A directory.")] = Path("."),
    url: UrlOption = None,
) -> None:
    """Save a job's outputs, or one artifact, into a directory; prints their paths."""
    with connect(url) as atelier:
        try:
            job = atelier.job(id)
        except JobNotFound:
            output.mkdir(parents=True, exist_ok=True)
            console.print(str(atelier.save(id, output)), highlight=False, soft_wrap=True)
            return
        if job.status != "completed" and not job.outputs:
            err.print(f"job {job.id} is {job.status}: no outputs yet", highlight=False)
            raise typer.Exit(code=1)
        for path in atelier.save_outputs(job, output):
            console.print(str(path), highlight=False, soft_wrap=True)


def mcp(url: UrlOption = None) -> None:
    """Serve Atelier's tools to an AI assistant over MCP on stdin/stdout, talking to
    --url with ATELIER_API_KEY (docs/MCP.md)."""
    from atelier.mcp.stdio import run_stdio

    run_stdio(url, os.environ.get("ATELIER_API_KEY"))
