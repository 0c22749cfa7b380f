"""What `atelier serve` loads at start: none of the heavy libraries that only some code
paths need (video joins and quality scorers, the MCP endpoint, S3, Redis limits, and
Alembic when the schema is at the newest revision already). Each
costs megabytes of resident memory for the life of the process (docs/PERFORMANCE.md,
"Memory"), so an eager import of one, anywhere the server loads, fails here.

Each check runs in a fresh interpreter: this test process has imported them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Loaded only by the code path that needs it, never at start.
HEAVY = (
    "av",  # PyAV: video joins, thumbnails, probing non-image outputs
    "numpy",
    "scipy",
    "skimage",  # the studio's quality gates
    "mcp",  # the MCP endpoint, on its first request
    "boto3",
    "botocore",
    "aiobotocore",
    "aioboto3",  # the S3 artifact store, when storage_url is set
    "coredis",
    "redis",
    "pympler",  # shared rate limits, when redis_url is set
    "alembic",
    "mako",  # migrations, when the database is behind the newest revision
)

BUILD = """
import json, sys
import atelier.cli  # what `atelier serve` imports before it builds the app
from atelier.app import create_app
from atelier.settings import Settings

create_app(Settings())
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {heavy})))
"""

SERVE = """
import asyncio, json, sys
import httpx
from atelier.app import create_app
from atelier.settings import Settings

def loaded():
    return sorted({{name.split(".")[0] for name in sys.modules}} & {heavy})

async def main():
    app = create_app(Settings())
    report = {{}}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path in ("/api/v1/jobs", "/", "/ui/", "/metrics", "/openapi.json", "/api/v1/workflows"):
                (await client.get(path)).raise_for_status()
            report["serving"] = loaded()
            answer = await client.post(
                "/mcp",
                json={{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {{}}}},
                headers={{"Accept": "application/json, text/event-stream"}},
            )
            report["mcp_status"] = answer.status_code
            report["mcp_tools"] = [tool["name"] for tool in answer.json()["result"]["tools"]]
            report["after_mcp"] = loaded()
    print(json.dumps(report))

asyncio.run(main())
"""


def run_python(code: str, data_dir: Path) -> str:
    """Runs code with default settings (no Redis, no S3: none of this shell's ATELIER_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env |= {"ATELIER_DATA_DIR": str(data_dir), "ATELIER_LOG_LEVEL": "warning"}
    result = subprocess.run(
        [sys.executable, "-c", code.format(heavy=set(HEAVY))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_building_the_app_imports_no_heavy_library(tmp_path: Path) -> None:
    assert json.loads(run_python(BUILD, tmp_path)) == []


def test_a_serving_app_loads_the_mcp_sdk_only_on_its_first_request(tmp_path: Path) -> None:
    migrate = [sys.executable, "-m", "atelier", "migrate", "--data-dir", str(tmp_path)]
    subprocess.run(migrate, check=True, capture_output=True, timeout=120)
    report = json.loads(run_python(SERVE, tmp_path))
    assert report["serving"] == []
    assert report["mcp_status"] == 200
    assert "submit_workflow" in report["mcp_tools"]
    assert report["after_mcp"] == ["mcp"]
