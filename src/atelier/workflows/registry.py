"""The workflow registry: built-in templates, a folder of templates, and the database.

Templates come from three places, later ones winning by name: the built-ins shipped in
the package (``atelier/workflows/builtin``), the folder ``<data dir>/workflows`` (a
manifest ``<name>.yaml``/``.yml``/``.manifest.json`` with its graph inline or in a file
beside it), and the versions admins registered through the API (table
``workflow_versions``; a deletion is a version without a manifest, which hides a
built-in of the same name too). Every change through the API is a new version number,
greater than any the name had; jobs record the name and version they ran.

The registry keeps a snapshot in memory (the OpenAPI document is built from it) and
refreshes it from the database on every use and every few seconds, so replicas agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from atelier.db.database import Database
from atelier.db.workflows import WorkflowRepository
from atelier.dispatch.backends import BackendPool
from atelier.errors import AtelierError, WorkflowExists, WorkflowNotFound
from atelier.workflows import manifest
from atelier.workflows.manifest import Template
from atelier.workflows.params import build_specs
from atelier.workflows.render import check_template
from atelier.workflows.schemas import bundled_object_info

log = logging.getLogger("atelier.workflows")

BUILTIN_DIR = Path(__file__).parent / "builtin"
REFRESH_INTERVAL = 5.0  # the background refresh
FRESH_FOR = 1.0  # how old a view a read may use
JsonDict = dict[str, Any]


def manifest_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_file()]
    return sorted(p for p in found if p.name.endswith((".yaml", ".yml", ".manifest.json")))


class WorkflowRegistry:
    def __init__(self, database: Database, folder: Path, pool: BackendPool) -> None:
        self.database = database
        self.folder = folder
        self.pool = pool
        self.revision = 0  # changes whenever the visible set of templates changes
        self.load_errors: dict[str, JsonDict] = {}
        self._files: dict[str, Template] = {}
        self._files_stamp: tuple[Any, ...] | None = None
        self._stored: dict[str, Template | None] = {}
        self._parsed: dict[tuple[str, int], Template] = {}
        self._task: asyncio.Task[None] | None = None
        self._refreshed_at = -1e9

    # -- schemas -------------------------------------------------------------------

    def schemas(self) -> tuple[list[JsonDict], bool]:
        """The backends' /object_info, or the bundled snapshot when none is known; and
        whether their model lists are real."""
        known = self.pool.known_object_infos()
        if known:
            return known, True
        return [bundled_object_info()], False

    # -- loading -------------------------------------------------------------------

    def _stamp(self) -> tuple[Any, ...]:
        return tuple((p.name, p.stat().st_mtime_ns) for p in manifest_files(self.folder))

    def _load_files(self) -> None:
        stamp = self._stamp()
        if stamp == self._files_stamp:
            return
        templates: dict[str, Template] = {}
        errors: dict[str, JsonDict] = {}
        schemas = self.schemas()[0]
        for source, directory in (("builtin", BUILTIN_DIR), ("folder", self.folder)):
            for path in manifest_files(directory):
                default_name = path.name.split(".")[0]
                try:
                    data = manifest.parse_text(path.read_text("utf-8"), source=path.name)
                    name = str(data.pop("name", None) or default_name)
                    template = manifest.load(
                        data, name=name, schemas=schemas, source=source, base_dir=directory
                    )
                except (AtelierError, OSError) as exc:
                    detail = (
                        exc.problem() if isinstance(exc, AtelierError) else {"detail": str(exc)}
                    )
                    errors[f"{source}:{path.name}"] = detail
                    log.warning("workflow %s (%s) not loaded: %s", path.name, source, detail)
                    continue
                templates[template.name] = template
        self._files, self._files_stamp, self.load_errors = templates, stamp, errors
        self.revision += 1

    async def refresh(self) -> None:
        self._load_files()
        async with self.database.transaction() as session:
            rows = await WorkflowRepository(session).latest()
        self._refreshed_at = time.monotonic()
        stored: dict[str, Template | None] = {}
        for row in rows:
            if row.manifest is None:
                stored[row.name] = None
                continue
            key = (row.name, row.version)
            if key not in self._parsed:
                try:
                    self._parsed[key] = manifest.load(
                        dict(row.manifest),
                        name=row.name,
                        version=row.version,
                        schemas=self.schemas()[0],
                        source="api",
                    )
                except AtelierError as exc:
                    log.error("stored workflow %s v%s is unreadable: %s", *key, exc.detail)
                    continue
                self._parsed[key].version = row.version
            stored[row.name] = self._parsed[key]
        if _versions(stored) != _versions(self._stored):
            self._stored = stored
            self.revision += 1

    def snapshot(self) -> dict[str, Template]:
        """Every visible template by name (no database access)."""
        merged = dict(self._files)
        for name, template in self._stored.items():
            if template is None:
                merged.pop(name, None)
            else:
                merged[name] = template
        return dict(sorted(merged.items()))

    async def all(self, *, max_age: float = FRESH_FOR) -> dict[str, Template]:
        """Every template, from a view at most ``max_age`` seconds old (a submit does
        not pay a database round trip each time; replicas agree within that time)."""
        if time.monotonic() - self._refreshed_at > max_age:
            await self.refresh()
        return self.snapshot()

    async def get(self, name: str) -> Template:
        template = (await self.all()).get(name)
        if template is None:  # maybe just registered on another replica
            template = (await self.all(max_age=0.0)).get(name)
        if template is None:
            raise WorkflowNotFound(f"no workflow {name!r}")
        return template

    async def history(self, name: str) -> list[JsonDict]:
        async with self.database.transaction() as session:
            rows = await WorkflowRepository(session).history(name)
        return [
            {
                "version": row.version,
                "deleted": row.manifest is None,
                "author": row.author,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]

    # -- changes through the API ---------------------------------------------------

    async def save(
        self, name: str, data: JsonDict, *, author: str | None, replace: bool
    ) -> tuple[Template, list[JsonDict]]:
        """Register a new version; returns it and the warnings (node classes no backend
        has). POST (replace=False) refuses a name that exists."""
        schemas, models_known = self.schemas()
        data = dict(data)
        data.pop("name", None)
        data.pop("version", None)
        template = manifest.load(data, name=name, schemas=schemas, source="api")
        warnings = check_template(
            template, build_specs(template, schemas, models_known=models_known), schemas
        )
        await self.refresh()
        exists = name in self.snapshot()
        if exists and not replace:
            raise WorkflowExists(f"workflow {name!r} exists; PUT replaces it")
        try:
            async with self.database.transaction() as session:
                repository = WorkflowRepository(session)
                history = await repository.history(name)
                version = self._next_version(name, history)
                await repository.add(name, version, template.stored(), author)
        except IntegrityError as exc:
            raise WorkflowExists(f"workflow {name!r} changed meanwhile; try again") from exc
        template.version = version
        template.source = "api"
        self._parsed[(name, version)] = template
        await self.refresh()
        return template, warnings

    async def delete(self, name: str, *, author: str | None) -> int:
        await self.refresh()
        if name not in self.snapshot():
            raise WorkflowNotFound(f"no workflow {name!r}")
        try:
            async with self.database.transaction() as session:
                repository = WorkflowRepository(session)
                version = self._next_version(name, await repository.history(name))
                await repository.add(name, version, None, author)
        except IntegrityError as exc:
            raise WorkflowExists(f"workflow {name!r} changed meanwhile; try again") from exc
        await self.refresh()
        return version

    def _next_version(self, name: str, history: list[Any]) -> int:
        highest = max((row.version for row in history), default=0)
        file_template = self._files.get(name)
        if file_template is not None:
            highest = max(highest, file_template.version)
        return highest + 1

    # -- background refresh --------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="workflow-registry")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                await self.refresh()
            except Exception:
                log.exception("workflow registry refresh failed; retrying")


def _versions(stored: dict[str, Template | None]) -> dict[str, int | None]:
    return {name: (t.version if t else None) for name, t in stored.items()}
