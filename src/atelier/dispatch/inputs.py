"""Media inputs reach the backend that runs the job, just before the prompt is sent.

A stored graph names its input files as ``"@artifact:<id>"`` (an input artifact of the
job). At dispatch each one is uploaded to the chosen backend through ``/upload/image``
(ComfyUI's one upload route, for images, video and audio alike) under a name derived
from its sha256, into the ``atelier/`` subfolder of ComfyUI's input directory, and the
graph sent to ComfyUI uses the name the backend returned. Uploads are remembered per
backend (sha256 -> name): a file already there is not sent again, after a cheap check
that the backend still has it (its input directory may have been cleaned).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from atelier.comfyui.client import ComfyClient
from atelier.db.tables import ArtifactRow
from atelier.dispatch.backends import Backend
from atelier.dispatch.ledger import JobLedger
from atelier.errors import PromptRejected
from atelier.storage.base import ArtifactStore

log = logging.getLogger("atelier.inputs")

MARKER = "@artifact:"
SUBFOLDER = "atelier"

# backend (name, url) -> {sha256: the name to put in the graph}
_uploaded: dict[tuple[str, str], dict[str, str]] = {}


_REFERENCE = re.compile(r"@artifact:([0-9a-fA-F-]{36})")


def references(graph: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(node id, input, artifact id) of every input file the graph names."""
    found = []
    for node_id, node in graph.items():
        for name, value in ((node or {}).get("inputs") or {}).items():
            match = _REFERENCE.fullmatch(value) if isinstance(value, str) else None
            if match is not None:
                found.append((node_id, name, match.group(1)))
    return found


def forget(backend: Backend) -> None:
    _uploaded.pop((backend.name, backend.url), None)


async def prepare_inputs(
    graph: dict[str, Any],
    backend: Backend,
    ledger: JobLedger,
    store: ArtifactStore,
    *,
    job_id: str,
) -> dict[str, Any]:
    """The graph to send to ``backend``: the job's input files uploaded there and named
    as it named them. Only the job's own input artifacts (checked when it was submitted)
    are resolved; any other text is left alone. Raises PromptRejected (the job fails with
    a validation error naming the node) if an input's file is gone; BackendUnavailable if
    the upload cannot reach the backend."""
    found = references(graph)
    if not found:
        return graph
    async with ledger.unit() as unit:
        rows = {aid: await unit.artifacts.get(aid) for aid in {a for _, _, a in found}}
    ready = copy.deepcopy(graph)
    names: dict[str, str] = {}
    for node_id, name, artifact_id in found:
        row = rows.get(artifact_id)
        if row is not None and (row.job_id != job_id or row.role != "input"):
            continue  # not one of this job's inputs: a prompt that merely looks like one
        if row is None or not await store.exists(row.storage_key):
            raise _gone(graph, node_id, name, artifact_id)
        if artifact_id not in names:
            names[artifact_id] = await _upload(backend, row, store)
        ready[node_id]["inputs"][name] = names[artifact_id]
    return ready


async def _upload(backend: Backend, row: ArtifactRow, store: ArtifactStore) -> str:
    known = _uploaded.setdefault((backend.name, backend.url), {})
    cached = known.get(row.sha256)
    if cached is not None and await _still_there(backend.client, cached):
        return cached
    data = b"".join([chunk async for chunk in store.read(row.storage_key)])
    suffix = "." + row.filename.rsplit(".", 1)[-1] if "." in row.filename else ""
    uploaded = await backend.client.upload_image(
        data, f"atelier-{row.sha256[:32]}{suffix}", subfolder=SUBFOLDER
    )
    value = uploaded.reference
    known[row.sha256] = value
    log.debug("uploaded %s to %s as %s", row.id, backend.name, value)
    return value


async def _still_there(client: ComfyClient, value: str) -> bool:
    subfolder, _, filename = value.rpartition("/")
    async with client.view(filename, subfolder=subfolder, type="input") as response:
        return response.status_code == 200


def _gone(graph: dict[str, Any], node_id: str, name: str, artifact_id: str) -> PromptRejected:
    reason = f"input artifact {artifact_id} is gone (deleted before the job ran)"
    class_type = (graph.get(node_id) or {}).get("class_type")
    return PromptRejected(
        reason,
        error={"type": "input_missing", "message": reason},
        node_errors={
            node_id: {
                "class_type": class_type,
                "errors": [
                    {
                        "message": "Input file missing",
                        "details": reason,
                        "extra_info": {"input_name": name},
                    }
                ],
            }
        },
    )
