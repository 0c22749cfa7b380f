"""Fixtures for the fake ComfyUI's own tests: a fresh server per test on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from atelier.testing import FakeComfyUI


@pytest.fixture
async def comfy(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(root_dir=tmp_path / "comfy") as server:
        yield server


@pytest.fixture
async def http(comfy: FakeComfyUI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=20) as client:
        yield client
