"""The SDK's typed answers of the studio API: the very models the server answers with
(production/views, run_views and gallery_views import nothing of the server)."""

from __future__ import annotations

from atelier.production.gallery_views import GalleryItem, GalleryPage
from atelier.production.run_views import PipelineView as Pipeline
from atelier.production.run_views import RunPage, SegmentStatus
from atelier.production.run_views import RunView as Run
from atelier.production.run_views import StepView as Step
from atelier.production.views import BibleView as Bible
from atelier.production.views import CharacterView as Character
from atelier.production.views import ProjectDefaults, ProjectPage, VisualStyle
from atelier.production.views import ProjectView as Project
from atelier.production.views import ReferenceView as Reference

__all__ = [
    "Bible",
    "Character",
    "GalleryItem",
    "GalleryPage",
    "Pipeline",
    "Project",
    "ProjectDefaults",
    "ProjectPage",
    "Reference",
    "Run",
    "RunPage",
    "SegmentStatus",
    "Step",
    "VisualStyle",
]
