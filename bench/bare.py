"""The baseline of ``bench api``: a bare ASGI app under uvicorn (same loop and HTTP parser
as ``atelier serve``) answering every request with one fixed JSON document of about the
size of a job's status. ``python -m bench.bare PORT [LOOP] [BUSY_US]``: LOOP is uvloop (the
default) or asyncio; BUSY_US makes every answer spin that many microseconds of CPU first,
so the app saturates a core the way Atelier does (``bench loops``)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import uvicorn

DOCUMENT = json.dumps(
    {
        "id": "00000000-0000-0000-0000-000000000000",
        "status": "queued",
        "priority": 0,
        "progress": 0.0,
        "queue_position": 3,
        "attempts": [],
        "outputs": [],
        "metadata": {},
        "labels": {},
        "created_at": "2026-01-01T00:00:00Z",
    }
).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(DOCUMENT)).encode())]


BUSY = float(sys.argv[3]) / 1e6 if len(sys.argv) > 3 else 0.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if BUSY:
        end = time.perf_counter() + BUSY
        while time.perf_counter() < end:
            pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": DOCUMENT})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop=sys.argv[2] if len(sys.argv) > 2 else "uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
