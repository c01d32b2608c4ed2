"""Helpers for browser tests: the system Chromium under Playwright (async), screenshots, fonts.

The pytest fixtures built on these live in the root ``conftest.py`` (``chromium``,
``browser_page``, ``console_errors``, ``screenshots``). Needs the dev dependency ``playwright``;
never ``playwright install``: Chromium is the Debian package that ``make install`` installs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Playwright

from .browser_packages import CHROMIUM, PACKAGES

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
LOCALE = "zh-CN"
VIEWPORT = {"width": 1366, "height": 900}


def missing_chromium_message() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if CHROMIUM.exists():
        return None
    return (
        f"{CHROMIUM} not found: run `make install` (it installs the Debian packages "
        f"{' and '.join(PACKAGES)}; as non-root: `sudo apt-get install {' '.join(PACKAGES)}`)"
    )


async def launch_chromium(playwright: Playwright) -> Browser:
    """Headless system Chromium."""
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
    )


async def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A fresh context: zh-CN, 1366x900 (``options`` override or add to these)."""
    return await browser.new_context(
        **{"locale": LOCALE, "viewport": VIEWPORT, "timezone_id": "Asia/Shanghai", **options}
    )


def screenshot_root(repo_root: Path) -> Path:
    """``$SCREENSHOT_DIR``, else ``.run/screenshots`` under the repository root."""
    env = os.environ.get("SCREENSHOT_DIR")
    return Path(env) if env else repo_root / ".run" / "screenshots"


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("_") or "_"


class Screenshots:
    """Numbered full-page PNGs of one test: ``<root>/<module>/<test>/01-<step>.png``, ..."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.paths: list[Path] = []

    @classmethod
    def for_test(cls, root: Path, module: str, test: str) -> Screenshots:
        """For one test; removes the PNGs an earlier run of it left."""
        directory = root / _safe(module) / _safe(test)
        if directory.is_dir():
            for old in directory.glob("*.png"):
                old.unlink()
        return cls(directory)

    async def shot(self, page: Page, step: str) -> Path:
        """Save a full-page screenshot named after the step; its path."""
        self.count += 1
        path = self.directory / f"{self.count:02d}-{_safe(step)}.png"
        self.directory.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=path, full_page=True)
        self.paths.append(path)
        return path


async def rendered_fonts(page: Page, selector: str) -> dict[str, int]:
    """The platform fonts Chromium used to draw the text of the first element matching
    ``selector``: family name -> glyph count (DevTools ``CSS.getPlatformFontsForNode``).
    Missing glyphs count under the fallback font (e.g. ``DejaVu Sans``) as tofu boxes."""
    cdp = await page.context.new_cdp_session(page)
    try:
        await cdp.send("DOM.enable")
        await cdp.send("CSS.enable")
        doc = await cdp.send("DOM.getDocument", {"depth": 0})
        found = await cdp.send(
            "DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": selector}
        )
        if not found["nodeId"]:
            raise LookupError(f"no element matches {selector!r}")
        fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": found["nodeId"]})
    finally:
        await cdp.detach()
    return {f["familyName"]: int(f["glyphCount"]) for f in fonts["fonts"]}
