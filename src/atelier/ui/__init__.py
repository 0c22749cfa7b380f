"""The web UI: server-rendered pages at /ui that call the JSON API from the browser.

The pages are shells (layout, navigation, empty tables); small scripts in ``static/``
fill them from ``/api/v1`` with the API key the person entered, kept in the tab's
sessionStorage and sent as ``Authorization: Bearer``. So the pages themselves hold no
one's data and need no key; the API decides what each caller may see, exactly as for
any other client. Live updates read the SSE streams with ``fetch()`` (which, unlike
``EventSource``, can send the header), so a key never appears in a URL.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from atelier.ui import pages


def install(app: FastAPI) -> None:
    """Serve the pages and their assets, and send browsers that open / to the UI."""
    app.include_router(pages.router)
    app.mount(pages.STATIC_PATH, pages.static_files(), name="ui-static")
    app.add_middleware(BrowserHomeRedirect)


class BrowserHomeRedirect:
    """``GET /`` from a browser (it asks for text/html) goes to the UI; API clients,
    which ask for JSON or anything (``*/*``), keep the service summary."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("path") == "/"
            and scope.get("method") in ("GET", "HEAD")
            and _wants_html(scope)
        ):
            location = f"{scope.get('root_path', '')}{pages.HOME}"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", location.encode()), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def _wants_html(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return b"text/html" in value.lower()
    return False
