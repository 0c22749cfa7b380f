"""A real Chromium for the UI tests (Debian's, driven by Playwright), and where the
screenshots go. Without chromium the tests are skipped, except on CI where that fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = (
    os.environ.get("ATELIER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "ui"


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"chromium is required on CI (apt-get install chromium); not at {CHROMIUM}")
    pytest.skip(f"no chromium at {CHROMIUM}: install Debian's chromium to run the browser tests")


async def open_browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """A full-page picture under test-output/ui/ (git ignores it), for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
