"""Feature visualization in Chromium at 1280×720: a short run (one facet, 20 iterations) shows
its progress bar and the image so far while it runs, then the facet's result beside its start
blend, nearest photos and top channels, with a PNG download. Screenshots land in ``screenshots/``."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from browser_helpers import assert_no_exception, main_area, open_page, screenshot, wait_for_app

RUN_TIMEOUT_MS = 180_000


# Records whether the running view ever showed its latest image (caption "the image so far").
_WATCH_IMAGE_SO_FAR_JS = """() => {
    window.__flSawImageSoFar = false;
    const main = document.querySelector('[data-testid="stMain"]');
    const seen = () => [...main.querySelectorAll('[data-testid="stImageCaption"]')]
        .some(c => c.innerText.startsWith('the image so far'));
    new MutationObserver((_, observer) => {
        if (seen()) { window.__flSawImageSoFar = true; observer.disconnect(); }
    }).observe(main, {subtree: true, childList: true, characterData: true});
}"""


def _slider_to_minimum(page: Page, label: str) -> None:
    thumb = page.get_by_role("slider", name=label)   # in the Settings popover
    thumb.focus()
    thumb.press("Home")
    wait_for_app(page)


def test_a_short_run_shows_progress_then_the_facet(page: Page, app_url: str):
    open_page(page, f"{app_url}/feature_visualization", (1280, 720), RUN_TIMEOUT_MS)
    main = main_area(page)
    expect(main.get_by_role("heading", name="Feature visualization")).to_be_visible()
    main.get_by_role("button", name="Settings").click()
    _slider_to_minimum(page, "Facets (C)")
    _slider_to_minimum(page, "Iterations")
    page.get_by_role("slider", name="Iterations").press("ArrowRight")   # 50: a few of the page's 1 s refreshes
    wait_for_app(page)
    expect(page.get_by_role("slider", name="Iterations")).to_have_attribute("aria-valuetext", "50")
    page.keyboard.press("Escape")
    page.evaluate(_WATCH_IMAGE_SO_FAR_JS)
    main.get_by_role("button", name="Visualize").click()

    progress = main.locator('[data-testid="stProgress"]')
    expect(progress).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(main.get_by_text("Facets: ")).to_be_visible()
    # The image so far is shown only while the run lasts (a fast machine can finish 50 steps in 3 s):
    # watched from the click on, so the check does not depend on catching it still on screen.
    page.wait_for_function("() => window.__flSawImageSoFar", timeout=RUN_TIMEOUT_MS)
    screenshot(page, "featureviz_running")

    expect(main.get_by_text("Facet 1", exact=False).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(main.get_by_role("button", name="Download the facets (PNG)")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    expect(progress).to_have_count(0)
    expect(main.get_by_role("paragraph").filter(has_text=re.compile(r"^result$"))).to_be_visible()
    expect(main.get_by_text("start: weighted blend")).to_be_visible()
    expect(main.locator('[data-testid="stVegaLiteChart"]')).to_have_count(1)
    result = main.locator('[data-testid="stImage"]').first   # views first: the facet's result, unscrolled
    box = result.bounding_box()
    assert page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTop") == 0
    assert box["y"] >= 0 and box["y"] + box["height"] <= 720, box
    main.get_by_text("Facet 1", exact=False).first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(screenshot(page, "featureviz_1280x720_full").with_name("featureviz_1280x720.png")))
