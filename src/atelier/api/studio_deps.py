"""The studio's dependency: route signatures take ``StudioDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from atelier.production.studio import Studio


def get_studio(request: Request) -> Studio:
    studio: Studio = request.app.state.runtime.studio
    return studio


StudioDep = Annotated[Studio, Depends(get_studio)]
