"""Copy a finished prompt's outputs from ComfyUI's /view into the artifact store.

History is the truth: every file listed under any key of a node's UI output (``images``,
``gifs``, ``audio``, ``video``...) is streamed into the store and probed; ``text``
entries become small text artifacts. Files are content-addressed, so a cached re-run
that points at an earlier run's file stores nothing new.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atelier.comfyui.client import ComfyClient
from atelier.comfyui.messages import HistoryEntry, OutputFile
from atelier.errors import BackendProtocolError
from atelier.media.probe import MediaInfo, probe
from atelier.storage.base import ArtifactStore, StoredBlob


@dataclass(frozen=True)
class CollectedOutput:
    node_id: str
    filename: str
    blob: StoredBlob
    media: MediaInfo
    text: str | None = None


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


def listed_files(outputs: dict[str, dict[str, Any]]) -> list[tuple[str, OutputFile, bool]]:
    """(node_id, file, animated) for every file named in a history entry's outputs."""
    found: list[tuple[str, OutputFile, bool]] = []
    for node_id in sorted(outputs, key=_node_order):
        ui = outputs[node_id] or {}
        animated = any(bool(flag) for flag in ui.get("animated", []) or [])
        for key, items in ui.items():
            if key in ("animated", "text") or not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    found.append((node_id, OutputFile.model_validate(item), animated))
    return found


async def collect_outputs(
    client: ComfyClient, entry: HistoryEntry, store: ArtifactStore
) -> list[CollectedOutput]:
    collected: list[CollectedOutput] = []
    for node_id, file, animated in listed_files(entry.outputs):
        async with client.view(file.filename, subfolder=file.subfolder, type=file.type) as response:
            if response.status_code != 200:
                raise BackendProtocolError(
                    f"output {file.filename!r} of node {node_id} is gone "
                    f"(/view answered {response.status_code})"
                )
            if store.local:
                blob = await store.put(response.aiter_bytes())
                media = await _probe(store, blob, file.filename)
            else:
                # Object storage: the bytes go to the bucket and, on the way, to a
                # temporary file the prober can open (PyAV needs a seekable file).
                with tempfile.NamedTemporaryFile(prefix="atelier-probe-") as spool:
                    blob = await store.put(_tee(response.aiter_bytes(), spool))
                    spool.flush()
                    media = await asyncio.to_thread(probe, Path(spool.name), file.filename)
        if animated and not media.animated:
            media = MediaInfo(**{**media.__dict__, "animated": True})
        collected.append(CollectedOutput(node_id, file.filename, blob, media))
    for node_id in sorted(entry.outputs, key=_node_order):
        for index, text in enumerate((entry.outputs[node_id] or {}).get("text", []) or []):
            data = str(text).encode()
            blob = await store.put_bytes(data)
            media = MediaInfo(kind="text", content_type="text/plain; charset=utf-8")
            name = f"node{node_id}_text{index}.txt"
            collected.append(CollectedOutput(node_id, name, blob, media, text=str(text)))
    return collected


async def _tee(chunks: AsyncIterable[bytes], sink: Any) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        sink.write(chunk)
        yield chunk


async def _probe(store: ArtifactStore, blob: StoredBlob, filename: str) -> MediaInfo:
    path = store.local_path(blob.key)
    if path is None:
        return MediaInfo(kind="other", content_type="application/octet-stream")
    return await asyncio.to_thread(probe, path, filename)
