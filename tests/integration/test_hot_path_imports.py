"""A job's way through the server imports nothing once the first job has run.

An `import` of a module that is not installed searches the whole of sys.path every time
it runs (a stat per path entry and suffix). httpx and httpcore try `import sniffio` on
every request and fall back when it fails; without sniffio installed that cost about
15 ms of CPU per job (docs/PERFORMANCE.md). Any import on the hot path, failing or
first-time, shows up here as a name the finder below was asked for."""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from typing import Any

from tests.graphs import sampler_graph


class RecordingFinder:
    """Sits first on sys.meta_path: sees every import of a module not loaded yet."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        self.names.append(name)
        return None


async def test_running_jobs_imports_nothing(server_factory: Any, fake: Any, tmp_path: Any) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [f"a={fake.url}"])

    async def run_jobs(client: Any, seeds: range) -> None:
        for seed in seeds:
            response = await client.post(
                "/api/v1/jobs",
                json={"graph": sampler_graph(seed=seed, steps=3)},
                headers={"Prefer": "wait=20"},
            )
            assert response.json()["status"] == "completed", response.text
            job = response.json()
            assert (await client.get(f"/api/v1/jobs/{job['id']}")).status_code == 200
            assert (await client.get(job["outputs"][0]["url"])).status_code == 200

    async with server.client() as client:
        await run_jobs(client, range(2))  # first-time imports happen here
        finder = RecordingFinder()
        sys.meta_path.insert(0, finder)
        try:
            await run_jobs(client, range(2, 6))
        finally:
            sys.meta_path.remove(finder)
    assert finder.names == []
