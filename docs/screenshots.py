"""Remake the README's screenshots in headless Chromium at a projector's 1280×720.

    python docs/screenshots.py

Starts the app on a free port (the browser tests' ``streamlit_server``), opens each view below,
moves the pointer to the point named (the views follow it) and saves ``docs/<name>.png``.
Needs /usr/bin/chromium (never ``playwright install``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.browser import browser_helpers  # noqa: E402  (the repo root must be importable first)

SIZE = {"width": 1280, "height": 720}
SHOTS = {  # name: (path, view index to point at, (x, y) in the view, normalised)
    "screenshot": ("/layer_hierarchy?images=chelsea&ref=0.37,0.35", 3, (0.37, 0.35)),
    "presentation": ("/layer_hierarchy?images=chelsea&ref=0.37,0.35&present=1", 1, (0.30, 0.15)),
    "compare": ("/compare_images?images=chelsea,astronaut,grace_hopper,coffee&layers=stage5", 1, (0.47, 0.30)),
}


def main() -> None:
    helpers = browser_helpers()
    from playwright.sync_api import sync_playwright

    with helpers.streamlit_server() as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(helpers.CHROMIUM), headless=True,
                                             args=helpers.CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=SIZE).new_page()
            for name, (path, view, (fx, fy)) in SHOTS.items():
                page.goto(base_url + path)
                helpers.wait_for_app(page)
                helpers.assert_no_exception(page)
                box = page.locator('[data-testid="stMain"] canvas.fl-sim-canvas').nth(view).bounding_box()
                page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                page.wait_for_timeout(300)
                page.screenshot(path=str(ROOT / "docs" / f"{name}.png"))
                print(f"docs/{name}.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
