"""What the API says about a template: its outputs, parameters, and who can run it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from atelier.comfyui import capabilities
from atelier.dispatch.backends import Backend
from atelier.workflows import models
from atelier.workflows.manifest import Template
from atelier.workflows.params import MEDIA_KINDS, build_specs, json_schema
from atelier.workflows.render import render
from atelier.workflows.schemas import node_info

JsonDict = dict[str, Any]

OUTPUT_KINDS: dict[str, str] = {
    "SaveImage": "image",
    "PreviewImage": "image",
    "SaveImageWebsocket": "image",
    "MaskPreview": "image",
    "SaveAnimatedWEBP": "animated_image",
    "SaveAnimatedPNG": "animated_image",
    "SaveWEBM": "video",
    "SaveVideo": "video",
    "VHS_VideoCombine": "video",
    "SaveAudio": "audio",
    "SaveAudioMP3": "audio",
    "SaveAudioOpus": "audio",
    "PreviewAudio": "audio",
    "PreviewAny": "text",
}


def outputs_of(template: Template, schemas: Sequence[JsonDict]) -> list[str]:
    if template.outputs is not None:
        return list(template.outputs)
    kinds: list[str] = []
    for node in template.graph.values():
        class_type = node["class_type"]
        kind = OUTPUT_KINDS.get(class_type)
        if kind is None and (node_info(schemas, class_type) or {}).get("output_node"):
            kind = "other"
        if kind is not None and kind not in kinds:
            kinds.append(kind)
    return kinds


def summary(template: Template, schemas: Sequence[JsonDict]) -> JsonDict:
    return {
        "name": template.name,
        "version": template.version,
        "description": template.description,
        "outputs": outputs_of(template, schemas),
        "source": template.source,
        "parameters": [p.name for p in template.params],
        "presets": sorted(template.presets),
    }


def needs(
    template: Template, schemas: Sequence[JsonDict], object_info: JsonDict | None = None
) -> tuple[set[str], set[str]]:
    """Node classes and model files the template needs with its default parameters (on
    this backend, when given: its model defaults are the files it has, see models.py)."""
    specs = build_specs(template, schemas, models_known=True)
    placeholder = {"artifact": "00000000-0000-0000-0000-000000000000"}
    values = {s.name: placeholder for s in specs if s.kind in MEDIA_KINDS}
    rendered = render(template, specs, values, schemas)
    graph = rendered.graph
    if object_info is not None:
        models.apply_defaults(template, graph, rendered.params, set(), [object_info])
    classes = set(capabilities.graph_classes(graph)) | set(template.requires_nodes)
    files = set(capabilities.graph_models(graph)) | set(template.requires_models)
    return classes, files


def backend_fit(
    template: Template, schemas: Sequence[JsonDict], backends: Iterable[Backend]
) -> list[JsonDict]:
    fits = []
    for backend in backends:
        entry: JsonDict = {"name": backend.name, "status": backend.state.value}
        if backend.object_info is None:
            entry.update(can_run=None, missing_node_classes=[], missing_models=[])
        else:
            classes, files = needs(template, schemas, backend.object_info)
            missing_classes, missing_models = capabilities.missing_on(
                backend.object_info, classes, files
            )
            entry.update(
                can_run=backend.accepts_work and not missing_classes and not missing_models,
                missing_node_classes=missing_classes,
                missing_models=missing_models,
            )
        fits.append(entry)
    return fits


def detail(
    template: Template,
    schemas: Sequence[JsonDict],
    *,
    models_known: bool,
    backends: Iterable[Backend],
    versions: list[JsonDict],
) -> JsonDict:
    specs = build_specs(template, schemas, models_known=models_known)
    return {
        **summary(template, schemas),
        "source_format": template.source_format,
        "schema": json_schema(specs, title=f"{template.name} parameters"),
        "presets": template.presets,
        "requires": {"nodes": template.requires_nodes, "models": template.requires_models},
        "backends": backend_fit(template, schemas, backends),
        "schema_source": "backends" if models_known else "bundled object_info (no backend up)",
        "versions": versions,
        "graph": template.graph,
    }
