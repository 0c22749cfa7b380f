"""The gallery (published outputs), the models each backend offers, and the presets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from atelier.comfyui import capabilities
from atelier.db.database import Database
from atelier.db.studio import OutputRepository
from atelier.dispatch.backends import BackendPool
from atelier.errors import ArtifactNotFound, AtelierError
from atelier.production.gallery_views import (
    BackendModels,
    GalleryItem,
    GalleryPage,
    ModelFile,
    ModelsList,
    PresetsList,
)
from atelier.production.presets import DEFAULT_PRESET, PRESETS, SCENE_TYPES
from atelier.production.projects import decode_cursor, encode_cursor
from atelier.settings import Settings
from atelier.workflows.describe import needs
from atelier.workflows.registry import WorkflowRegistry


class GalleryService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        pool: BackendPool,
        registry: WorkflowRegistry,
        artifact_url: Callable[[str, str], str],
    ) -> None:
        self.settings = settings
        self.database = database
        self.pool = pool
        self.registry = registry
        self.artifact_url = artifact_url

    async def list(
        self,
        *,
        visibility: str,
        owner: str | None,
        project_id: str | None,
        character_id: str | None,
        kind: str | None,
        cursor: str | None,
        limit: int,
        base_url: str,
    ) -> GalleryPage:
        before = decode_cursor(cursor) if cursor else None
        async with self.database.transaction() as session:
            rows = await OutputRepository(session).gallery(
                visibility=visibility,
                owner=owner,
                project_id=project_id,
                character_id=character_id,
                kind=kind,
                before=before,
                limit=limit + 1,
            )
        page = rows[:limit]
        items = [
            GalleryItem(
                artifact_id=artifact.id,
                kind=artifact.kind,
                content_type=artifact.content_type,
                width=artifact.width,
                height=artifact.height,
                url=self.artifact_url(base_url, artifact.id),
                thumbnail_url=self.artifact_url(base_url, out.thumbnail_id)
                if out.thumbnail_id
                else None,
                project_id=out.project_id,
                character_id=out.character_id,
                run_id=out.run_id,
                step=out.step,
                published=out.published,
                created_at=out.created_at,
            )
            for out, artifact in page
        ]
        last = page[-1][0] if page else None
        more = len(rows) > limit and last is not None
        return GalleryPage(
            items=items,
            next_cursor=encode_cursor(last.created_at, last.artifact_id) if more and last else None,
        )

    async def publish(self, artifact_id: str, published: bool, *, owner: str | None) -> None:
        async with self.database.transaction() as session:
            outputs = OutputRepository(session)
            row = await outputs.get(artifact_id)
            if row is None or (owner is not None and row.owner != owner):
                raise ArtifactNotFound(f"no studio output {artifact_id!r}")
            await outputs.set(artifact_id, published=published)

    def models(self) -> ModelsList:
        folders_on = dict(self.settings.models_folders())
        templates = self.registry.snapshot()
        schemas, _ = self.registry.schemas()
        wants: dict[str, tuple[set[str], set[str]]] = {}
        for name, template in templates.items():
            try:
                wants[name] = needs(template, schemas)
            except AtelierError:
                continue
        items = []
        for backend in self.pool:
            info = backend.object_info
            files = sorted(capabilities.backend_models(info) or ())
            root = folders_on.get(backend.name)
            grouped: dict[str, list[ModelFile]] = {}
            for entry in files:
                folder, _, name = entry.partition("/")
                if "." in folder:  # "Class.input" of an unknown loader: listed by folder
                    continue
                grouped.setdefault(folder, []).append(
                    ModelFile(name=name, size=_size(root, folder, name))
                )
            runnable = []
            if info is not None:
                for name, (classes, models) in sorted(wants.items()):
                    missing_classes, missing_models = capabilities.missing_on(info, classes, models)
                    if not missing_classes and not missing_models:
                        runnable.append(name)
            items.append(
                BackendModels(
                    backend=backend.name,
                    status=backend.state.value,
                    folders=grouped,
                    workflows=runnable,
                )
            )
        return ModelsList(items=items)

    @staticmethod
    def presets() -> PresetsList:
        return PresetsList(default=DEFAULT_PRESET, presets=PRESETS, scene_types=SCENE_TYPES)


def _size(root: Path | None, folder: str, name: str) -> int | None:
    if root is None or "." in folder or ".." in Path(name).parts:
        return None
    path = root / folder / name
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None
