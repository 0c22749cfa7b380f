"""The CLI's studio commands, on the SDK: ``projects list|create|show``, ``generate``,
``runs list|show|watch|approve|reject``. Problems are one line on stderr, exit code 1
(as in cli_sdk)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from atelier.cli_sdk import UrlOption, connect, console, err
from atelier.client import Atelier, Run, Step
from atelier.client.studio_base import RUN_STOPS

projects_app = typer.Typer(help="Studio projects: list, create, show.")
runs_app = typer.Typer(help="Pipeline runs: list, show, watch, approve, reject.")

# A run's step progress comes from its jobs' progress, which the run's own events do not
# carry (they say when a step changes state): watch reads the run this often.
WATCH_INTERVAL = 0.5


def register(app: typer.Typer) -> None:
    """Add these commands to the ``atelier`` command."""
    app.add_typer(projects_app, name="projects")
    app.add_typer(runs_app, name="runs")
    app.command("generate")(generate)


# -- projects ------------------------------------------------------------------------


@projects_app.command("list")
def list_projects(
    status: Annotated[
        list[str] | None, typer.Option(help="draft, active or archived (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    url: UrlOption = None,
) -> None:
    """Your projects, newest first."""
    with connect(url) as atelier:
        page = atelier.projects(status=status, limit=limit)
    table = Table("id", "name", "status", "created")
    for project in page.items:
        table.add_row(
            project.id, project.name, project.status, f"{project.created_at:%Y-%m-%d %H:%M}"
        )
    console.print(table)


@projects_app.command("create")
def create_project(
    name: str,
    description: Annotated[str, typer.Option(help="What the project is about.")] = "",
    active: Annotated[bool, typer.Option(help="Start it active rather than draft.")] = False,
    url: UrlOption = None,
) -> None:
    """Make a project (with an empty bible); prints its id."""
    with connect(url) as atelier:
        project = atelier.create_project(
            name, description=description, status="active" if active else "draft"
        )
    console.print(project.id, highlight=False)


@projects_app.command("show")
def show_project(project_id: str, url: UrlOption = None) -> None:
    """A project: its bible's style, its characters and its latest runs."""
    with connect(url) as atelier:
        project = atelier.project(project_id)
        bible = atelier.bible(project_id)
        characters = atelier.characters(project_id)
        runs = atelier.runs(project=project_id, limit=10).items
    console.print(f"[bold]{project.name}[/bold] ({project.status}) {project.id}", highlight=False)
    if project.description:
        console.print(project.description, highlight=False)
    console.print(f"style: {bible.style.style_prompt or '-'}", highlight=False)
    if bible.style.negative_prompt:
        console.print(f"negative: {bible.style.negative_prompt}", highlight=False)
    table = Table("character", "prompt fragment", "references", "lora")
    for character in characters:
        table.add_row(
            character.name,
            character.prompt_fragment,
            str(len(character.references)),
            character.lora or "",
        )
    console.print(table)
    _runs_table(runs)


# -- generate and runs ---------------------------------------------------------------


def generate(
    project: Annotated[str, typer.Argument(help="A project id (atelier projects list).")],
    prompt: Annotated[str, typer.Option(help="What to make.")],
    character: Annotated[str | None, typer.Option(help="A character's name or id.")] = None,
    duration: Annotated[
        float, typer.Option(help="Seconds: 0 is a still, longer a video by segments.")
    ] = 0,
    segments: Annotated[int | None, typer.Option(help="Segments (default: auto).")] = None,
    quality: Annotated[str | None, typer.Option(help="fast_preview, production or ultra.")] = None,
    width: Annotated[int | None, typer.Option()] = None,
    height: Annotated[int | None, typer.Option()] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps.")] = None,
    review: Annotated[
        str | None, typer.Option(help="auto, manual (hold for a person) or none.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Watch it (a bar per segment), then save its outputs.")
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where --wait saves the outputs.")
    ] = Path("."),
    url: UrlOption = None,
) -> None:
    """Generate in a project; prints the run id, or with --wait the output paths."""
    with connect(url) as atelier:
        run = atelier.generate(
            project,
            prompt,
            character=character,
            duration=duration,
            segments=segments,
            quality=quality,  # type: ignore[arg-type]  # the server names a bad one
            width=width,
            height=height,
            steps=steps,
            review=review,  # type: ignore[arg-type]
        )
        if not wait:
            console.print(run.id, highlight=False)
            return
        err.print(f"run {run.id} ({run.pipeline})", highlight=False)
        _finish(atelier, _watch(atelier, run), output)


@runs_app.command("list")
def list_runs(
    project: Annotated[str | None, typer.Option(help="Only this project's runs.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    url: UrlOption = None,
) -> None:
    """Pipeline runs, newest first."""
    with connect(url) as atelier:
        runs = atelier.runs(project=project, status=status, limit=limit).items
    _runs_table(runs)


@runs_app.command("show")
def show_run(run_id: str, url: UrlOption = None) -> None:
    """A run: status, progress, every step, segments, outputs (one URL a line)."""
    with connect(url) as atelier:
        run = atelier.get_run(run_id)
    console.print(
        f"[bold]{run.id}[/bold] {run.pipeline}: {run.status} {run.progress:.0%}", highlight=False
    )
    if run.error:
        console.print(f"error: {run.error.get('message') or run.error}", highlight=False)
    if run.segments:
        s = run.segments
        eta = f", eta {s.eta_seconds:.0f} s" if s.eta_seconds is not None else ""
        console.print(
            f"segments: {s.completed}/{s.total} done, {s.processing} rendering, "
            f"{s.failed} failed{eta}",
            highlight=False,
        )
    table = Table("step", "group", "status", "progress", "tries", "backend")
    for step in run.steps:
        table.add_row(
            step.name,
            step.group,
            step.status,
            f"{step.progress:.0%}",
            str(step.tries),
            step.backend or "",
        )
    console.print(table)
    for artifact in run.outputs:
        console.print(artifact.url, highlight=False, soft_wrap=True)


@runs_app.command("watch")
def watch_run(
    run_id: str,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to save the outputs at the end.")
    ] = Path("."),
    url: UrlOption = None,
) -> None:
    """One progress bar per segment (per step for a run without segments) until the run
    ends or waits for a review; then saves the outputs and prints their paths."""
    with connect(url) as atelier:
        _finish(atelier, _watch(atelier, atelier.get_run(run_id)), output)


@runs_app.command("approve")
def approve_run(
    run_id: str,
    step: Annotated[str | None, typer.Option(help="The gate (default: every one waiting).")] = None,
    comment: Annotated[str, typer.Option()] = "",
    url: UrlOption = None,
) -> None:
    """Pass the gate(s) awaiting review; the run goes on."""
    with connect(url) as atelier:
        run = atelier.approve_run(run_id, step=step, comment=comment)
    console.print(f"{run.id} {run.status}", highlight=False)


@runs_app.command("reject")
def reject_run(
    run_id: str,
    step: Annotated[str | None, typer.Option(help="The gate (default: every one waiting).")] = None,
    comment: Annotated[str, typer.Option()] = "",
    url: UrlOption = None,
) -> None:
    """Fail the gate(s) awaiting review; the run fails (a retry rerolls the step)."""
    with connect(url) as atelier:
        run = atelier.reject_run(run_id, step=step, comment=comment)
    console.print(f"{run.id} {run.status}", highlight=False)


def _runs_table(runs: list[Run]) -> None:
    table = Table("run", "pipeline", "status", "progress", "segments", "created")
    for run in runs:
        segments = f"{run.segments.completed}/{run.segments.total}" if run.segments else ""
        table.add_row(
            run.id,
            run.pipeline,
            run.status,
            f"{run.progress:.0%}",
            segments,
            f"{run.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


def _shown(run: Run) -> list[Step]:
    """The steps that get a bar: the segments, else every job step."""
    segments = [s for s in run.steps if s.group == "segment"]
    return segments or [s for s in run.steps if s.kind == "job"] or run.steps


def _watch(atelier: Atelier, run: Run) -> Run:
    """Bars (on stderr) until the run ends or stops for a review; the run as it ended."""
    with Progress(
        TextColumn("[bold]{task.description:<12}"),
        TextColumn("{task.fields[status]:<15}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=err,
    ) as bars:
        tasks: dict[str, TaskID] = {}
        while True:
            for step in _shown(run):
                if step.name not in tasks:
                    tasks[step.name] = bars.add_task(step.name, total=1.0, status=step.status)
                done = 1.0 if step.status == "completed" else step.progress
                bars.update(tasks[step.name], completed=done, status=step.status)
            if run.status in RUN_STOPS:
                return run
            time.sleep(WATCH_INTERVAL)
            run = atelier.get_run(run.id)


def _finish(atelier: Atelier, run: Run, output: Path) -> None:
    if run.status == "awaiting_review":
        err.print(
            f"run {run.id} awaits review: atelier runs approve|reject {run.id}", highlight=False
        )
        return
    if run.status != "completed":
        reason = f": {run.error.get('message')}" if run.error else ""
        err.print(f"[red]run {run.id} {run.status}[/red]{reason}", highlight=False)
        raise typer.Exit(code=1)
    for path in atelier.save_run_outputs(run, output):
        console.print(str(path), highlight=False, soft_wrap=True)
