"""/api/v1/workflows: list and describe templates, run them, and (admins) manage them.

Each template also gets its own documented route in the OpenAPI document,
``POST /api/v1/workflows/<name>/jobs`` with the template's parameters as its request
schema; ``install`` rebuilds that part of the document whenever the templates (or the
backends' schemas) change.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, FastAPI, Header, Path, Query, Request, Response, status

from atelier.api.deps import AdminDep, BaseUrl, Creator, JobsDep, Owner, RuntimeDep
from atelier.api.idempotency import IdempotencyKey
from atelier.api.jobs import accept
from atelier.errors import WorkflowInvalid
from atelier.jobs.views import JobCreate, JobView
from atelier.workflows import describe, manifest
from atelier.workflows.params import build_specs, json_schema
from atelier.workflows.views import WorkflowDetail, WorkflowList

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

WorkflowName = Annotated[
    str, Path(pattern=manifest.NAME.pattern, description="Letters, digits, _ . - (128 at most)")
]

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A workflow manifest with its graph inline (docs/WORKFLOWS.md)",
    "required": ["graph"],
    "properties": {
        "description": {"type": "string"},
        "graph": {"type": "object", "description": "ComfyUI graph, API or UI format"},
        "parameters": {"oneOf": [{"type": "array"}, {"type": "object"}]},
        "presets": {"type": "object"},
        "requires": {"type": "object"},
        "outputs": {"type": "array", "items": {"type": "string"}},
    },
}
MANIFEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": MANIFEST_SCHEMA} for t in ("application/json", YAML_TYPES[0])},
    }
}


@router.get("", operation_id="list_workflows")
async def list_workflows(jobs: JobsDep) -> WorkflowList:
    """Every workflow template: name, version, description, kinds of outputs."""
    registry = jobs.workflows.registry
    templates = await registry.all()
    schemas, _ = registry.schemas()
    items = [describe.summary(t, schemas) for t in templates.values()]
    return WorkflowList.model_validate({"items": items})


@router.get("/{name}", operation_id="get_workflow")
async def get_workflow(name: str, jobs: JobsDep, runtime: RuntimeDep) -> WorkflowDetail:
    """The template's parameters as JSON Schema, its presets, and which backends can run
    it now (and what the others lack)."""
    registry = jobs.workflows.registry
    template = await registry.get(name)
    schemas, models_known = registry.schemas()
    detail = describe.detail(
        template,
        schemas,
        models_known=models_known,
        backends=list(runtime.pool),
        versions=await registry.history(name),
    )
    return WorkflowDetail.model_validate(detail)


@router.post(
    "/{name}/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="run_workflow",
    include_in_schema=False,  # documented once per workflow (see install)
)
async def run_workflow(
    name: str,
    response: Response,
    jobs: JobsDep,
    runtime: RuntimeDep,
    owner: Owner,
    creator: Creator,
    base_url: BaseUrl,
    params: Annotated[dict[str, Any] | None, Body()] = None,
    preset: Annotated[str | None, Query(max_length=128)] = None,
    priority: Annotated[int, Query(ge=-1000, le=1000)] = 0,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobView:
    await jobs.workflows.registry.get(name)  # 404 for an unknown name
    body = JobCreate(workflow=name, params=params or {}, preset=preset, priority=priority)
    return await accept(
        body, response, jobs, runtime, owner, creator, base_url, prefer, idempotency_key
    )


async def _manifest(request: Request) -> dict[str, Any]:
    raw = await request.body()
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind in YAML_TYPES:
        return manifest.parse_text(raw.decode("utf-8", "replace"), source="body")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise WorkflowInvalid([{"field": "body", "reason": "not valid JSON"}]) from exc
    if not isinstance(data, dict):
        raise WorkflowInvalid([{"field": "body", "reason": "a manifest must be an object"}])
    return data


async def _save(
    name: str, request: Request, jobs: JobsDep, admin: AdminDep, *, replace: bool
) -> dict[str, Any]:
    data = await _manifest(request)
    template, warnings = await jobs.workflows.registry.save(
        name, data, author=admin.owner, replace=replace
    )
    return {"name": template.name, "version": template.version, "warnings": warnings}


@router.post(
    "/{name}",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_workflow",
    openapi_extra=MANIFEST_BODY,
)
async def create_workflow(
    name: WorkflowName, request: Request, response: Response, jobs: JobsDep, admin: AdminDep
) -> dict[str, Any]:
    """Register a new template (admin): a manifest with its graph inline, JSON or YAML.
    409 if the name exists (PUT replaces). Answers its version and warnings (node classes
    no backend has yet)."""
    saved = await _save(name, request, jobs, admin, replace=False)
    response.headers["Location"] = f"/api/v1/workflows/{quote(name, safe='')}"  # any name
    return saved


@router.put("/{name}", operation_id="replace_workflow", openapi_extra=MANIFEST_BODY)
async def replace_workflow(
    name: WorkflowName, request: Request, jobs: JobsDep, admin: AdminDep
) -> dict[str, Any]:
    """Register a template or a new version of it (admin); a built-in is overridden."""
    return await _save(name, request, jobs, admin, replace=True)


@router.delete("/{name}", operation_id="delete_workflow", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(name: str, jobs: JobsDep, admin: AdminDep) -> Response:
    """Delete a template (admin): a new version that hides the name, built-ins included.
    Jobs that ran it keep its name and version."""
    await jobs.workflows.registry.delete(name, author=admin.owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- the OpenAPI document, one route per workflow ----------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _operation(name: str, description: str, presets: list[str], ref: str, problem: Any) -> Any:
    preset_schema: dict[str, Any] = {"type": "string"}
    if presets:
        preset_schema["enum"] = presets
    job = {"application/json": {"schema": {"$ref": "#/components/schemas/JobView"}}}
    return {
        "post": {
            "tags": ["workflows"],
            "summary": f"Run {name}",
            "description": description or f"Run the {name} workflow.",
            "operationId": f"run_workflow_{_safe(name)}",
            "parameters": [
                {"name": "preset", "in": "query", "required": False, "schema": preset_schema},
                {
                    "name": "priority",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
                },
                {"name": "prefer", "in": "header", "required": False, "schema": {"type": "string"}},
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                },
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": ref}}},
            },
            "responses": {
                "202": {"description": "Queued", "content": job},
                "200": {"description": "Finished within Prefer: wait=N", "content": job},
                "404": {"description": "No such workflow", "content": problem},
                "422": {"description": "A parameter is invalid", "content": problem},
                "4XX": {"description": "Problem", "content": problem},
                "5XX": {"description": "Problem", "content": problem},
            },
        }
    }


def install(app: FastAPI) -> None:
    """Add every workflow's own route to the OpenAPI document (built by whatever
    app.openapi was before), rebuilt when the templates or the backends' schemas change."""
    previous = app.openapi
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        base = previous()
        runtime = getattr(app.state, "runtime", None)
        if runtime is None:
            return base
        registry = runtime.jobs.workflows.registry
        key = (id(base), registry.revision, tuple(id(b.object_info) for b in runtime.pool))
        if cache.get("key") == key:
            document: dict[str, Any] = cache["document"]
            return document
        document = copy.deepcopy(base)
        components = document.setdefault("components", {}).setdefault("schemas", {})
        problem: Any = {"application/problem+json": {"schema": {"type": "object"}}}
        if "Problem" in components:
            problem = {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
        schemas, models_known = registry.schemas()
        for name, template in registry.snapshot().items():
            specs = build_specs(template, schemas, models_known=models_known)
            schema_name = f"Workflow_{_safe(name)}"
            components[schema_name] = json_schema(specs, title=f"{name} parameters")
            item = _operation(
                name,
                template.description,
                sorted(template.presets),
                f"#/components/schemas/{schema_name}",
                problem,
            )
            if "securitySchemes" in document["components"]:
                item["post"]["security"] = [{"bearer": []}, {}]  # as the other routes
            document["paths"][f"/api/v1/workflows/{name}/jobs"] = item
        cache.update(key=key, document=document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
