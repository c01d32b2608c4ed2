"""Integration: the browser-test fixtures drive the system Chromium and Chinese text renders in a
CJK font (fonts-noto-cjk), not as tofu boxes."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Page, expect

from devstack.browser import Screenshots, rendered_fonts

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>免考审核</title>
<link rel="icon" href="data:,"></head>
<body style="font-family: sans-serif">
  <h1 id="title">免考申请审核</h1>
  <p><span id="cjk" style="font-size: 40px">审核审核</span></p>
</body></html>
""".encode()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_cjk_font_installed() -> None:
    fc_list = shutil.which("fc-list")
    assert fc_list, "fc-list missing: run `make install` (installs chromium and fonts-noto-cjk)"
    out = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True).stdout
    assert out.strip(), "no CJK font: run `make install` (installs fonts-noto-cjk)"


async def test_chinese_page_renders_in_a_cjk_font(
    browser_page: Page, console_errors: list[str], screenshots: Screenshots, page_url: str
) -> None:
    await browser_page.goto(page_url)
    await expect(browser_page.get_by_role("heading", name="免考申请审核")).to_be_visible()
    assert await browser_page.evaluate("navigator.language") == "zh-CN"
    assert browser_page.viewport_size == {"width": 1366, "height": 900}

    path = await screenshots.shot(browser_page, "loaded")
    assert path.name == "01-loaded.png"
    assert path.parent.parts[-2:] == ("test_browser", "test_chinese_page_renders_in_a_cjk_font")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert (await screenshots.shot(browser_page, "again")).name == "02-again.png"

    # Every glyph comes from a CJK font (without one, Chromium draws them as DejaVu tofu boxes).
    fonts = await rendered_fonts(browser_page, "#title")
    assert fonts, fonts
    assert all("CJK" in family for family in fonts), f"not drawn in a CJK font: {fonts}"
    assert sum(fonts.values()) == len("免考申请审核")
    # CJK glyphs are full-width: four of them at 40px are ~160px (tofu boxes: ~96px).
    box = await browser_page.locator("#cjk").bounding_box()
    assert box is not None
    assert box["width"] == pytest.approx(160, abs=4), box

    assert console_errors == []
