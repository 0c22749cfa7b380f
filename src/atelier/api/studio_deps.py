"""The studio's dependency: route signatures take ``StudioDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from atelier.production.studio import Studio


async def get_studio(connection: HTTPConnection) -> Studio:
    studio: Studio = connection.app.state.runtime.studio
    return studio


StudioDep = Annotated[Studio, Depends(get_studio)]
