"""From a submit request to the graph a job stores: a raw graph, or a template's.

``WorkflowJobs.prepare`` is the one call the jobs service makes. For a raw graph it
converts the UI format if needed, checks the graph against the backends' schemas and
their capabilities, and claims the earlier artifacts it names (``"@artifact:<id>"``).
For a template it checks the parameters (422 naming the parameter), renders the graph,
checks capabilities first (a template's missing custom nodes are a capability problem,
not a broken graph), then the graph, and only then fetches or decodes media inputs, so a
rejected request costs no downloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atelier.comfyui import capabilities
from atelier.db.tables import ArtifactRow
from atelier.dispatch.backends import BackendPool
from atelier.dispatch.inputs import MARKER, references
from atelier.dispatch.ledger import JobLedger
from atelier.errors import CapabilityMissing, ValidationFailed, WorkflowNotFound
from atelier.media.inputs import MediaInputs, copy_for_job
from atelier.settings import Settings
from atelier.storage.base import ArtifactStore
from atelier.workflows import convert, models, validation
from atelier.workflows.manifest import Template
from atelier.workflows.params import build_specs, validate
from atelier.workflows.registry import WorkflowRegistry
from atelier.workflows.render import fill_media, render

JsonDict = dict[str, Any]


@dataclass
class Prepared:
    graph: JsonDict
    workflow: str | None = None
    version: int | None = None
    params: JsonDict | None = None
    inputs: list[ArtifactRow] = field(default_factory=list)  # the job's input artifacts


def _field(name: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {reason}", errors=[{"field": name, "reason": reason}])


class WorkflowJobs:
    def __init__(
        self, settings: Settings, *, ledger: JobLedger, pool: BackendPool, store: ArtifactStore
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.pool = pool
        self.registry = WorkflowRegistry(ledger.database, settings.data_dir / "workflows", pool)
        self.media = MediaInputs(
            store,
            allowlist=settings.url_allowlist,
            max_bytes=settings.input_max_bytes,
            timeout=settings.input_fetch_timeout,
        )

    async def start(self) -> None:
        await self.registry.start()

    async def close(self) -> None:
        await self.registry.close()

    def backends(self) -> list[tuple[str, JsonDict | None]]:
        return [(b.name, b.object_info) for b in self.pool]

    async def prepare(
        self,
        *,
        graph: Any,
        workflow: str | None,
        params: JsonDict,
        preset: str | None,
        owner: str | None,
        job_id: str,
    ) -> Prepared:
        if workflow is None:
            if graph is None:
                raise _field("graph", "give a graph, or a workflow and its params")
            if params or preset:
                raise _field("params", "params and preset go with a workflow")
            return await self._raw(graph, owner=owner, job_id=job_id)
        if graph is not None:
            raise _field("graph", "give either a graph or a workflow, not both")
        try:
            template = await self.registry.get(workflow)
        except WorkflowNotFound as exc:
            raise _field("workflow", exc.detail) from exc
        return await self.from_template(template, params, preset, owner=owner, job_id=job_id)

    async def _raw(self, graph: Any, *, owner: str | None, job_id: str) -> Prepared:
        known = self.pool.known_object_infos()
        if convert.is_ui_format(graph):
            graph = convert.ui_to_api(graph, known or self.registry.schemas()[0])
        checked = validation.check_structure(graph, max_nodes=self.settings.max_graph_nodes)
        validation.check_against_schemas(checked, known)
        capabilities.check_runnable(checked, self.backends())
        rows: list[ArtifactRow] = []
        claimed: dict[str, str] = {}
        for node_id, name, artifact_id in references(checked):
            where = f"graph.{node_id}.{name}"
            if artifact_id not in claimed:
                async with self.ledger.unit() as unit:
                    source = await self.media.reuse(
                        unit, artifact_id, field=where, visible_owner=owner
                    )
                row = copy_for_job(source, job_id, owner)
                rows.append(row)
                claimed[artifact_id] = row.id
            checked[node_id]["inputs"][name] = MARKER + claimed[artifact_id]
        return Prepared(checked, inputs=rows)

    async def from_template(
        self,
        template: Template,
        params: Any,
        preset: str | None,
        *,
        owner: str | None,
        job_id: str,
    ) -> Prepared:
        schemas, models_known = self.registry.schemas()
        specs = build_specs(template, schemas, models_known=models_known)
        values: JsonDict = {}
        if preset is not None:
            if preset not in template.presets:
                choices = ", ".join(sorted(template.presets)) or "none"
                raise _field("preset", f"no preset {preset!r} (this workflow has: {choices})")
            values.update(validate(template.presets[preset], specs, prefix=f"preset.{preset}."))
        values.update(validate(params if params is not None else {}, specs))
        rendered = render(template, specs, values, schemas)
        # Models the caller did not choose: the first that a backend has (models.py).
        unfilled, installed = models.apply_defaults(
            template, rendered.graph, rendered.params, set(values), self.pool.known_object_infos()
        )
        graph = validation.check_structure(
            rendered.graph, max_nodes=max(self.settings.max_graph_nodes, len(rendered.graph))
        )
        try:
            capabilities.check_runnable(
                graph,
                self.backends(),
                extra_classes=template.requires_nodes,
                extra_models=template.requires_models,
            )
        except CapabilityMissing as exc:
            models.explain(exc, unfilled, installed)
            raise
        validation.check_against_schemas(graph, self.pool.known_object_infos())
        specs_by_name = {spec.name: spec for spec in specs}
        rows: list[ArtifactRow] = []
        for param, form in rendered.media.items():
            spec = specs_by_name[param]
            row = await self.media.resolve(
                self.ledger.unit,
                form,
                kind=spec.kind,
                field=param,
                owner=owner,
                visible_owner=owner,
                job_id=job_id,
            )
            rows.append(row)
            fill_media(graph, spec, MARKER + row.id)
            rendered.params[param] = row.id
        return Prepared(graph, template.name, template.version, rendered.params, rows)
