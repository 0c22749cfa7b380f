"""ComfyClient speaks one error tree: a broken backend never leaks ValueError or is ignored.

The backend is the fake ComfyUI on a real socket, switched over POST /fake/fault into the
ways a real one goes wrong: 500s (a crashing server or a proxy without its upstream), and an
HTML page with a 200 or a 4xx (a login page, a proxy in front of the wrong service).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from atelier.comfyui.client import ComfyClient
from atelier.errors import AtelierError, BackendProtocolError, BackendUnavailable

Call = Callable[[ComfyClient], Awaitable[Any]]

CALLS: dict[str, Call] = {
    "models": lambda client: client.models("checkpoints"),
    "upload_image": lambda client: client.upload_image(b"\x89PNG", "a.png"),
    "delete_pending": lambda client: client.delete_pending(["p1"]),
    "interrupt": lambda client: client.interrupt("p1"),
}


async def _fault(fake: Any, **switches: Any) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as http:
        answer = await http.post("/fake/fault", json=switches)
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_healthy_backend_answers_each_call(fake: Any, name: str) -> None:
    async with ComfyClient(fake.url) as client:
        result = await CALLS[name](client)
    if name == "models":
        assert isinstance(result, list) and all(isinstance(f, str) for f in result)
    if name == "upload_image":
        assert result.name == "a.png" and result.type == "input"


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_server_in_trouble_is_unavailable_never_ignored(fake: Any, name: str) -> None:
    await _fault(fake, errors=True)
    async with ComfyClient(fake.url) as client:
        with pytest.raises(BackendUnavailable, match="answered 500"):
            await CALLS[name](client)


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_refusing_page_is_a_protocol_error(fake: Any, name: str) -> None:
    await _fault(fake, page=403)
    async with ComfyClient(fake.url) as client:
        with pytest.raises(BackendProtocolError, match="answered 403"):
            await CALLS[name](client)


@pytest.mark.parametrize("name", ["models", "upload_image"])
async def test_an_html_page_with_200_is_a_protocol_error_not_a_value_error(
    fake: Any, name: str
) -> None:
    await _fault(fake, page=200)
    async with ComfyClient(fake.url) as client:
        with pytest.raises(BackendProtocolError) as raised:
            await CALLS[name](client)
    assert isinstance(raised.value, AtelierError)
    assert not isinstance(raised.value, ValueError)
