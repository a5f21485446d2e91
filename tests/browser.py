"""Open stviz pages in the system's headless Chromium (Debian's `chromium`), through
Playwright's Python package and no browser download. Used by the browser tests, and
to take the README's screenshots from real output:

    python tests/browser.py stviz-out/clip/report.html docs/report-compare.png --small
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """$STVIZ_CHROMIUM, else the first Chromium on PATH."""
    return os.environ.get("STVIZ_CHROMIUM") or next(
        (p for p in map(shutil.which, CANDIDATES) if p), None)


def unavailable() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return ("no Chromium found (apt-get install chromium, or set STVIZ_CHROMIUM to its "
                "executable)")
    return None


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=find_chromium(),
                              args=["--autoplay-policy=no-user-gesture-required"])
        try:
            yield b
        finally:
            b.close()


class Page:
    """A loaded page and everything it said or asked for: console errors, uncaught
    exceptions, and the URL of every request."""

    def __init__(self, b: Any, path: Path, width: int = 1280, height: int = 860) -> None:
        # The pages forbid eval in their Content-Security-Policy; Playwright's waits need it.
        self.page = b.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(Path(path).resolve().as_uri())
        self.page.wait_for_load_state("load")

    def wait_for_video(self) -> None:
        """Until the player's video has its first frame and the overlay is drawn."""
        self.page.wait_for_selector("html[data-ready=true]")
        self.page.wait_for_function("document.getElementById('video').readyState >= 2")

    def close(self) -> None:
        self.page.close()


def screenshot(path: Path, png: Path, full_page: bool = False, small: bool = False) -> Path:
    """A PNG of the page at `path`; a video page shown at the most relevant frame of its
    first method. `small`: at 3/4 size in 256 colours (for the README)."""
    with browser() as b:
        page = Page(b, path)
        if page.page.query_selector("#video"):
            page.wait_for_video()
            page.page.evaluate("seek(methods[0].frames[methods[0].temporal.indexOf("
                               "Math.max(...methods[0].temporal))])")
            page.page.wait_for_timeout(300)
        png.parent.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(png), full_page=full_page)
    if small:
        from PIL import Image

        image = Image.open(png).convert("RGB")
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        image.quantize(256, method=Image.Quantize.FASTOCTREE).save(png, optimize=True)
    return png


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), full_page="--full" in sys.argv,
               small="--small" in sys.argv)
