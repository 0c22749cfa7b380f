"""ComfyUI over HTTP (aiohttp) and WebSocket (websockets).

Every network failure surfaces as ``BackendUnavailable`` and every unreadable answer as
``BackendProtocolError``, so callers deal with two cases, not with aiohttp's whole tree.

aiohttp rather than httpx here: a job makes three to five requests to its backend
(/prompt, /history, /view, probes), and httpx spent about 1 ms of CPU on each where
aiohttp spends about 0.1 ms (docs/PERFORMANCE.md, "The slowest part").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, Self
from urllib.parse import urlencode

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from atelier.comfyui.messages import (
    HistoryEntry,
    Message,
    QueueState,
    SubmitResult,
    UploadedFile,
    parse_message,
)
from atelier.errors import BackendProtocolError, BackendUnavailable, PromptRejected


class ComfyClientFactory(Protocol):
    """What makes the client of one backend URL (``ComfyClient`` itself; a test may pass
    another), so the pool is built with it rather than reaching for the class."""

    def __call__(self, base_url: str, *, timeout: float) -> ComfyClient: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole HTTP answer from ComfyUI."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


class FileStream:
    """An answer of /view, read as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status

    async def aiter_bytes(self, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_chunked(chunk_size):
            yield chunk


class ComfyClient:
    """One ComfyUI backend. Cheap to keep; close() releases its connection pool."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http: aiohttp.ClientSession | None = None  # made in the loop that uses it

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # No proxy from the environment (aiohttp's default): backends are this
            # network's machines, reached directly.
            self._http = aiohttp.ClientSession(auto_decompress=True)
        return self._http

    def _timeouts(self, timeout: float | None) -> aiohttp.ClientTimeout:
        # As long as each step may take (connect, then every read), not the whole
        # exchange: a large /view may take longer than any one read.
        seconds = timeout if timeout is not None else self._timeout
        return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        timeout: float | None = None,
        json: Any = None,
        data: Any = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        body, headers = data, None
        if json is not None:
            body, headers = _dumps(json), {"Content-Type": "application/json"}
        try:
            async with self._session().request(
                method,
                self.base_url + path,
                data=body,
                headers=headers,
                params=params,
                timeout=self._timeouts(timeout),
                allow_redirects=False,
            ) as response:
                answer = Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendUnavailable(f"{self.base_url}: {type_name(exc)}".rstrip(": ")) from exc
        _raise_for_server_trouble(method, path, answer.status_code)
        return answer

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise BackendProtocolError(f"{method} {path} answered {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise BackendProtocolError(f"{method} {path} answered non-JSON") from exc

    # Info

    async def system_stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        data = await self._json("GET", "/system_stats", timeout=timeout)
        if not isinstance(data, dict):
            raise BackendProtocolError("/system_stats is not an object")
        return data

    async def object_info(self) -> dict[str, Any]:
        data = await self._json("GET", "/object_info", timeout=max(self._timeout, 30.0))
        if not isinstance(data, dict):
            raise BackendProtocolError("/object_info is not an object")
        return data

    async def models(self, folder: str) -> list[str]:
        """The files of one model folder; [] for a folder this ComfyUI does not know (404)."""
        response = await self._request("GET", f"/models/{folder}")
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise BackendProtocolError(f"GET /models/{folder} answered {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise BackendProtocolError(f"GET /models/{folder} answered non-JSON") from exc
        if not isinstance(data, list):
            raise BackendProtocolError(f"GET /models/{folder} is not a list")
        return [str(x) for x in data]

    # Prompts and queue

    async def submit(
        self,
        prompt: dict[str, Any],
        *,
        prompt_id: str,
        client_id: str,
        number: float | None = None,
        front: bool = False,
        extra_data: dict[str, Any] | None = None,
    ) -> SubmitResult:
        body: dict[str, Any] = {"prompt": prompt, "prompt_id": prompt_id, "client_id": client_id}
        if number is not None:
            body["number"] = number
        if front:
            body["front"] = True
        if extra_data:
            body["extra_data"] = extra_data
        response = await self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            try:
                data = response.json()
            except ValueError as exc:
                raise BackendProtocolError("POST /prompt answered 400 without JSON") from exc
            error = data.get("error") if isinstance(data, dict) else None
            error = error if isinstance(error, dict) else {"message": str(error)}
            node_errors = data.get("node_errors") or {}
            raise PromptRejected(
                str(error.get("message", "rejected")), error=error, node_errors=node_errors
            )
        if response.status_code != 200:
            raise BackendProtocolError(f"POST /prompt answered {response.status_code}")
        try:
            return SubmitResult.model_validate(response.json())
        except ValueError as exc:
            raise BackendProtocolError("POST /prompt answered an unreadable body") from exc

    async def queue(self) -> QueueState:
        data = await self._json("GET", "/queue")
        try:
            return QueueState(
                running=[str(item[1]) for item in data.get("queue_running", [])],
                pending=[
                    str(item[1])
                    for item in sorted(data.get("queue_pending", []), key=lambda i: i[0])
                ],
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise BackendProtocolError("GET /queue answered an unreadable body") from exc

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The history entry, or None while ComfyUI has none (it answers ``{}``)."""
        data = await self._json("GET", f"/history/{prompt_id}")
        if not isinstance(data, dict) or prompt_id not in data:
            return None
        try:
            return HistoryEntry.model_validate(data[prompt_id])
        except ValueError as exc:
            raise BackendProtocolError("history entry is unreadable") from exc

    async def delete_pending(self, prompt_ids: list[str]) -> None:
        await self._expect_ok("POST", "/queue", json={"delete": prompt_ids})

    async def interrupt(self, prompt_id: str | None = None) -> None:
        body = {"prompt_id": prompt_id} if prompt_id else {}
        await self._expect_ok("POST", "/interrupt", json=body)

    async def _expect_ok(self, method: str, path: str, **kwargs: Any) -> None:
        """A command whose answer has no body worth reading, only a status."""
        response = await self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise BackendProtocolError(f"{method} {path} answered {response.status_code}")

    # Files

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = False
    ) -> UploadedFile:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        form.add_field("subfolder", subfolder)
        form.add_field("type", "input")
        form.add_field("overwrite", str(overwrite).lower())
        response = await self._request("POST", "/upload/image", data=form)
        if response.status_code != 200:
            raise BackendProtocolError(f"POST /upload/image answered {response.status_code}")
        try:
            return UploadedFile.model_validate(response.json())
        except ValueError as exc:  # pydantic's ValidationError and JSON errors alike
            raise BackendProtocolError("POST /upload/image answered an unreadable body") from exc

    @asynccontextmanager
    async def view(
        self, filename: str, *, subfolder: str = "", type: str = "output"
    ) -> AsyncIterator[FileStream]:
        """Stream one output file; the caller reads ``response.aiter_bytes()``."""
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        try:
            response = await self._session().get(
                self.base_url + "/view",
                params=params,
                timeout=self._timeouts(None),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendUnavailable(f"{self.base_url}: {type_name(exc)}") from exc
        try:
            _raise_for_server_trouble("GET", "/view", response.status)
            yield FileStream(response)
        except (aiohttp.ClientError, TimeoutError) as exc:  # broke while streaming
            raise BackendUnavailable(f"{self.base_url}: /view: {type_name(exc)}") from exc
        finally:
            response.release()

    # WebSocket

    def websocket_url(self, client_id: str) -> str:
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        host = self.base_url.split("://", 1)[1]
        return f"{scheme}://{host}/ws?{urlencode({'clientId': client_id})}"

    @asynccontextmanager
    async def connect(self, client_id: str) -> AsyncIterator[ComfySocket]:
        try:
            connection = await asyncio.wait_for(
                # No permessage-deflate: ComfyUI's messages are small JSON and JPEG
                # previews, and inflating every frame cost more CPU than it saved.
                websockets.connect(self.websocket_url(client_id), max_size=None, compression=None),
                timeout=self._timeout,
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise BackendUnavailable(f"{self.base_url}: websocket: {type_name(exc)}") from exc
        try:
            yield ComfySocket(connection)
        finally:
            await connection.close()


class ComfySocket:
    """The /ws stream for one client_id, as typed messages."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def receive(self, timeout: float) -> Message | None:
        """The next message, or None after ``timeout`` seconds of silence.

        Raises BackendUnavailable when the socket closes.
        """
        try:
            # asyncio.timeout, not wait_for: no task of its own for every message
            # (recv is safe to cancel: the next call returns the message).
            async with asyncio.timeout(timeout):
                raw = await self._connection.recv()
        except TimeoutError:
            return None
        except (websockets.ConnectionClosed, OSError) as exc:
            raise BackendUnavailable(f"websocket closed: {type_name(exc)}") from exc
        return parse_message(raw)


def type_name(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _raise_for_server_trouble(method: str, path: str, status: int) -> None:
    """A 5xx is the server in trouble (crashing, overloaded, a proxy without its upstream),
    which passes: callers treat it like a refused connection, not like a bad answer."""
    if status >= 500:
        raise BackendUnavailable(f"{method} {path} answered {status}")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
