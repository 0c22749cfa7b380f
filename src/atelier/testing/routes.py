"""HTTP routes of the fake ComfyUI (server.py of ComfyUI 0.3.64), each also under /api."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import mimetypes
import os
import sys
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydantic import ValidationError

from atelier.testing.fake_queue import QueueItem
from atelier.testing.faults import FaultRequest
from atelier.testing.schema import STANDARD_MODEL_FOLDERS
from atelier.testing.validation import validate_prompt

if TYPE_CHECKING:
    from atelier.testing.fake_comfyui import FakeComfyUI

JsonDict = dict[str, Any]

COMFYUI_VERSION = "0.3.64"
MAX_UPLOAD_SIZE = 100 * 1024 * 1024
SERVER_FEATURES: JsonDict = {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE}
_FORCED_DOWNLOAD = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}


class ServerTrouble(Exception):
    """Where ComfyUI's handler would crash: aiohttp answers a plain-text 500."""


def _body(json_data: Any, *keys: str) -> JsonDict:
    """The request body as a dict. ComfyUI probes bodies with `key in body`, so a JSON list
    or string without those keys reads as empty; anything else crashes its handler."""
    if isinstance(json_data, dict):
        return json_data
    if isinstance(json_data, list | str) and not any(k in json_data for k in keys):
        return {}
    raise ServerTrouble(f"unusable request body {json_data!r:.80}")


def _empty(status: int) -> web.Response:
    return web.Response(status=status)


def _ram() -> tuple[int, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 32 * 1024**3, 16 * 1024**3


def _has_id(prompt_id: Any, item: QueueItem) -> bool:
    return bool(item[1] == prompt_id)


class Routes:
    def __init__(self, fake: FakeComfyUI) -> None:
        self.fake = fake

    def table(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/ws", self.fake.websocket_handler),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.model_folders),
            ("GET", "/models/{folder}", self.models),
            ("GET", "/extensions", self.extensions),
            ("POST", "/upload/image", self.upload_image),
            ("POST", "/upload/mask", self.upload_mask),
            ("GET", "/view", self.view),
            ("GET", "/view_metadata/{folder_name}", self.view_metadata),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_node),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("GET", "/queue", self.get_queue),
            ("POST", "/prompt", self.post_prompt),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("POST", "/history", self.post_history),
        ]

    def register(self, app: web.Application) -> None:
        routes = self.table()
        app.router.add_routes([web.route(m, "/api" + p, h) for m, p, h in routes])
        app.router.add_routes([web.route(m, p, h) for m, p, h in routes])
        # /internal is a sub-app in ComfyUI, so it has no /api twin.
        app.router.add_get("/internal/files/{directory_type}", self.internal_files)
        # Not ComfyUI: counters for benchmarks that run the fake in another process.
        app.router.add_get("/fake/stats", self.fake_stats)
        app.router.add_get("/fake/fault", self.get_fault)
        app.router.add_post("/fake/fault", self.post_fault)

    async def fake_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "prompt_count": self.fake.prompt_count,
                "model_switches": self.fake.model_switches,
                "loaded_checkpoint": self.fake.loaded_checkpoint,
            }
        )

    async def get_fault(self, request: web.Request) -> web.Response:
        return web.json_response(self.fake.faults.state())

    async def post_fault(self, request: web.Request) -> web.Response:
        try:
            fault = FaultRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return web.json_response({"error": exc.errors(include_url=False)}, status=400)
        return web.json_response(await self.fake.faults.apply(fault))

    # -- queue and prompts -------------------------------------------------------------

    async def post_prompt(self, request: web.Request) -> web.Response:
        fake = self.fake
        json_data = _body(await request.json(), "number", "front", "prompt", "client_id")
        if "number" in json_data:
            number: float | int = float(json_data["number"])
        else:
            number = fake.number
            if json_data.get("front"):
                number = -number
            # Incremented before validation: rejected prompts use up numbers too.
            fake.number += 1
        if "prompt" not in json_data:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = json_data["prompt"]
        prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
        partial = json_data.get("partial_execution_targets")
        result = validate_prompt(prompt, partial, fake.schemas(), fake.dirs.exists_annotated)
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if not result.ok:
            failure = {"error": result.error, "node_errors": result.node_errors}
            return web.json_response(failure, status=400)
        fake.queue.put((number, prompt_id, prompt, extra_data, result.good_outputs))
        body: JsonDict = {
            "prompt_id": prompt_id,
            "number": number,
            "node_errors": result.node_errors,
        }
        return web.json_response(body)

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.fake.queue_info())

    async def get_queue(self, request: web.Request) -> web.Response:
        queue = self.fake.queue
        return web.json_response(
            {"queue_running": queue.running(), "queue_pending": queue.pending()}
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        json_data = _body(await request.json(), "clear", "delete")
        queue = self.fake.queue
        if json_data.get("clear"):
            queue.wipe_queue()
        if "delete" in json_data:
            for prompt_id in json_data["delete"]:
                queue.delete_queue_item(functools.partial(_has_id, prompt_id))
        return _empty(200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            json_data = _body(await request.json())
        except json.JSONDecodeError:
            json_data = {}
        prompt_id = json_data.get("prompt_id")
        if prompt_id:
            # Targeted: only if that prompt is the one running; pending ones are untouched.
            if any(item[1] == prompt_id for item in self.fake.queue.running()):
                self.fake.request_interrupt()
        else:
            self.fake.request_interrupt()
        return _empty(200)

    async def post_free(self, request: web.Request) -> web.Response:
        json_data = _body(await request.json())
        unload_models = json_data.get("unload_models", False)
        free_memory = json_data.get("free_memory", False)
        if unload_models:
            self.fake.queue.set_flag("unload_models", unload_models)
        if free_memory:
            self.fake.queue.set_flag("free_memory", free_memory)
        return _empty(200)

    async def get_history(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        history = self.fake.queue.get_history(max_items=max_items, offset=offset)
        return web.json_response(history)

    async def get_history_item(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        return web.json_response(self.fake.queue.get_history(prompt_id=prompt_id))

    async def post_history(self, request: web.Request) -> web.Response:
        json_data = _body(await request.json(), "clear", "delete")
        queue = self.fake.queue
        if json_data.get("clear"):
            queue.wipe_history()
        if "delete" in json_data:
            for prompt_id in json_data["delete"]:
                queue.delete_history_item(prompt_id)
        return _empty(200)

    # -- files -------------------------------------------------------------------------

    def _dir_by_type(self, kind: Any) -> tuple[str, str]:
        kind = "input" if kind is None else kind
        folder = self.fake.dirs.by_type(kind) if isinstance(kind, str) else None
        if folder is None:
            # ComfyUI's get_dir_by_type hits an unbound local here.
            raise ServerTrouble(f"unknown upload type {kind!r}")
        return str(folder), str(kind)

    def _image_upload(self, post: Any, mask_ref: str | None = None) -> web.Response:
        image = post.get("image")
        overwrite = post.get("overwrite")
        upload_dir, upload_type = self._dir_by_type(post.get("type"))
        if not image:
            return _empty(400)
        if not isinstance(image, web.FileField):
            raise ServerTrouble("image field is not a file")
        filename = image.filename
        if not filename:
            return _empty(400)
        subfolder = post.get("subfolder", "")
        folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        filepath = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((upload_dir, filepath)) != upload_dir:
            return _empty(400)
        os.makedirs(folder, exist_ok=True)
        content = image.file.read()
        stem, ext = os.path.splitext(filename)
        duplicate = False
        if overwrite not in ("true", "1"):
            digest = hashlib.sha256(content).hexdigest()
            counter = 1
            while os.path.exists(filepath):
                with open(filepath, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() == digest:
                        duplicate = True
                        break
                filename = f"{stem} ({counter}){ext}"
                filepath = os.path.join(folder, filename)
                counter += 1
        if not duplicate:
            if mask_ref is None:
                with open(filepath, "wb") as f:
                    f.write(content)
            else:
                self._save_mask(content, mask_ref, filepath)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})

    async def upload_image(self, request: web.Request) -> web.Response:
        return self._image_upload(await request.post())

    async def upload_mask(self, request: web.Request) -> web.Response:
        post = await request.post()
        ref = post.get("original_ref")
        return self._image_upload(post, mask_ref=ref if isinstance(ref, str) else "null")

    def _save_mask(self, content: bytes, ref_json: str, filepath: str) -> None:
        """Copies the uploaded alpha onto the referenced original; silently does nothing
        when the reference is bad (ComfyUI's early returns there are discarded)."""
        ref = json.loads(ref_json)
        filename, base = self.fake.dirs.annotated(ref["filename"])
        if not filename or filename[0] == "/" or ".." in filename:
            return
        folder = base or self.fake.dirs.by_type(ref.get("type", "output"))
        if folder is None:
            return
        out = str(folder)
        if ref.get("subfolder", "") != "":
            full = os.path.join(out, ref["subfolder"])
            if os.path.commonpath((os.path.abspath(full), out)) != out:
                return
            out = full
        original_path = os.path.join(out, filename)
        if not os.path.isfile(original_path):
            return
        with Image.open(original_path) as original:
            metadata = PngInfo()
            for key, value in getattr(original, "text", {}).items():
                metadata.add_text(key, value)
            rgba = original.convert("RGBA")
        with Image.open(io.BytesIO(content)) as mask:
            rgba.putalpha(mask.convert("RGBA").getchannel("A"))
        rgba.save(filepath, compress_level=4, pnginfo=metadata)

    def _view_path(self, query: Mapping[str, str]) -> tuple[int, str]:
        """The checks of GET /view, in ComfyUI's order: (status, path of the file)."""
        if "filename" not in query:
            return 404, ""
        filename, base = self.fake.dirs.annotated(query["filename"])
        if not filename or filename[0] == "/" or ".." in filename:
            return 400, ""
        folder = base or self.fake.dirs.by_type(query.get("type", "output"))
        if folder is None:
            return 400, ""
        out = str(folder)
        if "subfolder" in query:
            full = os.path.join(out, query["subfolder"])
            if os.path.commonpath((os.path.abspath(full), out)) != out:
                return 403, ""
            out = full
        # Only the basename counts: filename=sub/x.png silently serves <type>/x.png.
        file = os.path.join(out, os.path.basename(filename))
        return (200, file) if os.path.isfile(file) else (404, "")

    async def view(self, request: web.Request) -> web.StreamResponse:
        if self.fake.faults.view_delay:
            await asyncio.sleep(self.fake.faults.view_delay)
        query = request.rel_url.query
        status, file = self._view_path(query)
        if status != 200:
            return _empty(status)
        filename = os.path.basename(file)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in query:
            return self._preview(file, query["preview"], query.get("channel", ""), disposition)
        channel = query.get("channel", "rgba")
        if channel in ("rgb", "a"):
            return self._channel(file, channel, disposition)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in _FORCED_DOWNLOAD:
            content_type = "application/octet-stream"
        return web.FileResponse(file, headers={**disposition, "Content-Type": content_type})

    @staticmethod
    def _preview(file: str, preview: str, channel: str, headers: dict[str, str]) -> web.Response:
        parts = preview.split(";")
        image_format = parts[0]
        if image_format not in ("webp", "jpeg") or "a" in channel:
            image_format = "webp"
        quality = int(parts[-1]) if parts[-1].isdigit() else 90
        buf = io.BytesIO()
        with Image.open(file) as img:
            out = img.convert("RGB") if image_format == "jpeg" or channel == "rgb" else img
            out.save(buf, format=image_format, quality=quality)
        return web.Response(
            body=buf.getvalue(), content_type=f"image/{image_format}", headers=headers
        )

    @staticmethod
    def _channel(file: str, channel: str, headers: dict[str, str]) -> web.Response:
        buf = io.BytesIO()
        with Image.open(file) as img:
            if channel == "rgb":
                img.convert("RGB").save(buf, format="PNG")
            else:
                alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
                alpha_img = Image.new("RGBA", img.size)
                alpha_img.putalpha(alpha)
                alpha_img.save(buf, format="PNG")
        return web.Response(body=buf.getvalue(), content_type="image/png", headers=headers)

    async def internal_files(self, request: web.Request) -> web.Response:
        kind = request.match_info["directory_type"]
        if kind not in ("output", "input", "temp"):
            return web.json_response({"error": "Invalid directory type"}, status=400)
        folder = self.fake.dirs.by_type(kind)
        assert folder is not None
        entries = [e for e in os.scandir(folder) if e.is_file()]
        entries.sort(key=lambda e: -e.stat().st_mtime)
        return web.json_response([e.name for e in entries])

    # -- info --------------------------------------------------------------------------

    async def system_stats(self, request: web.Request) -> web.Response:
        fake = self.fake
        ram_total, ram_free = _ram()
        vram_free = fake.vram_free()
        return web.json_response(
            {
                "system": {
                    "os": os.name,
                    "ram_total": ram_total,
                    "ram_free": ram_free,
                    "comfyui_version": COMFYUI_VERSION,
                    "required_frontend_version": "1.27.10",
                    "installed_templates_version": "0.1.95",
                    "required_templates_version": "0.1.95",
                    "python_version": sys.version,
                    "pytorch_version": "2.8.0+cu128",
                    "embedded_python": False,
                    "argv": ["main.py", "--listen", fake.host, "--port", str(fake.port)],
                },
                "devices": [
                    {
                        "name": f"cuda:0 Fake GPU ({fake.name}) : cudaMallocAsync",
                        "type": "cuda",
                        "index": 0,
                        "vram_total": fake.vram_total,
                        "vram_free": vram_free,
                        "torch_vram_total": fake.vram_total,
                        "torch_vram_free": vram_free,
                    }
                ],
            }
        )

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(SERVER_FEATURES)

    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.fake.schemas().all())

    async def object_info_node(self, request: web.Request) -> web.Response:
        node_class = request.match_info["node_class"]
        entry = self.fake.schemas().get(node_class)
        return web.json_response({node_class: entry} if entry is not None else {})

    def _folders(self) -> list[str]:
        extra = [f for f in self.fake.model_files if f not in STANDARD_MODEL_FOLDERS]
        return [*STANDARD_MODEL_FOLDERS, *extra]

    async def model_folders(self, request: web.Request) -> web.Response:
        return web.json_response(self._folders())

    async def models(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self._folders():
            return _empty(404)
        return web.json_response(sorted(self.fake.model_files.get(folder, [])))

    async def embeddings(self, request: web.Request) -> web.Response:
        names = sorted(self.fake.model_files.get("embeddings", []))
        return web.json_response([os.path.splitext(n)[0] for n in names])

    async def extensions(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def view_metadata(self, request: web.Request) -> web.Response:
        # The fake's model files have no safetensors header to read.
        return _empty(404)
