"""The UI's pages and its navigation.

Each page is a template that draws the layout; its script (``static/<page>.js``) loads
the data from the JSON API. ``NAV`` is the navigation bar: a new section (the studio's
projects, characters and runs) adds its ``NavLink`` there and its templates beside these,
with ``{% extends "base.html" %}`` (as the studio's projects and runs pages do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from atelier import __version__

HOME = "/ui/"
STATIC_PATH = "/ui/static"
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class NavLink:
    """One entry of the navigation bar; ``section`` marks it active on its pages."""

    section: str
    label: str
    path: str


NAV: list[NavLink] = [
    NavLink("queue", "Queue", "/ui/"),
    NavLink("submit", "Submit", "/ui/submit"),
    NavLink("gallery", "Gallery", "/ui/gallery"),
    NavLink("projects", "Projects", "/ui/projects"),
    NavLink("runs", "Runs", "/ui/runs"),
    NavLink("backends", "Backends", "/ui/backends"),
]

# The pages load nothing from elsewhere and run no inline script; outputs may come from
# a public_url on another host (a CDN), so images and media may load from anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src * data: blob:; media-src * data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


def static_files() -> StaticFiles:
    return StaticFiles(directory=_HERE / "static")


router = APIRouter(prefix="/ui", include_in_schema=False)


def render(request: Request, template: str, section: str, **context: object) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "nav": NAV,
            "section": section,
            "root": request.scope.get("root_path", ""),
            "static": f"{request.scope.get('root_path', '')}{STATIC_PATH}",
            "version": __version__,
            **context,
        },
    )
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("", response_class=RedirectResponse)
async def ui_root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{request.scope.get('root_path', '')}{HOME}", status_code=308)


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request) -> HTMLResponse:
    return render(request, "queue.html", "queue", title="Queue")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(
    request: Request, job_id: Annotated[str, PathParam(max_length=64)]
) -> HTMLResponse:
    return render(request, "job.html", "queue", title="Job", job_id=job_id)


@router.get("/submit", response_class=HTMLResponse)
async def submit_page(request: Request) -> HTMLResponse:
    return render(request, "submit.html", "submit", title="Submit")


@router.get("/gallery", response_class=HTMLResponse)
async def gallery_page(request: Request) -> HTMLResponse:
    return render(request, "gallery.html", "gallery", title="Gallery")


# The studio: projects (bible, characters, generate) and pipeline runs.


@router.get("/projects", response_class=HTMLResponse)
async def projects_page(request: Request) -> HTMLResponse:
    return render(request, "projects.html", "projects", title="Projects")


@router.get("/projects/{project_id}", response_class=HTMLResponse)
async def project_page(
    request: Request, project_id: Annotated[str, PathParam(max_length=64)]
) -> HTMLResponse:
    return render(request, "project.html", "projects", title="Project", project_id=project_id)


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(request: Request) -> HTMLResponse:
    return render(request, "runs.html", "runs", title="Runs")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request, run_id: Annotated[str, PathParam(max_length=64)]
) -> HTMLResponse:
    return render(request, "run.html", "runs", title="Run", run_id=run_id)


@router.get("/backends", response_class=HTMLResponse)
async def backends_page(request: Request) -> HTMLResponse:
    return render(request, "backends.html", "backends", title="Backends")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", "login", title="Sign in")
