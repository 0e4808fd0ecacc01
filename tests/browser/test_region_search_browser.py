"""Region search in Chromium: draw on the canvas, see the results and the box plots change.

Screenshots land in ``screenshots/`` at the repo root (also at 1280×720, a projector)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from browser_helpers import main_area, open_page, screenshot, wait_for_app

FIRST_BUILD_MS = 300_000  # a clean machine computes the offline cache on first use


def _canvas(page: Page):
    """The drawing surface of streamlit-drawable-canvas (fabric's upper canvas)."""
    canvas = main_area(page).locator("canvas.upper-canvas").first
    expect(canvas).to_be_visible(timeout=30_000)
    return canvas


def _hit_captions(page: Page) -> list[str]:
    captions = main_area(page).locator('[data-testid="stImageCaption"]').all_inner_texts()
    return [c for c in captions if c.startswith("#")]


def _draw(page: Page, box: tuple[float, float, float, float]) -> None:
    """Paint a zig-zag over ``box`` (fractions of the canvas) with the free-draw brush."""
    canvas = _canvas(page)
    canvas.scroll_into_view_if_needed()
    bounds = canvas.bounding_box()
    x0, y0, x1, y1 = (bounds["x"] + box[0] * bounds["width"], bounds["y"] + box[1] * bounds["height"],
                      bounds["x"] + box[2] * bounds["width"], bounds["y"] + box[3] * bounds["height"])
    page.mouse.move(x0, y0)
    page.mouse.down()
    rows = 6
    for i in range(rows + 1):
        y = y0 + (y1 - y0) * i / rows
        page.mouse.move(x1 if i % 2 == 0 else x0, y, steps=8)
    page.mouse.up()


def test_domain_shift_draw_a_region_and_see_results_and_box_plot(page: Page, app_url: str):
    page.goto(f"{app_url}/domain_shift")
    wait_for_app(page, timeout_ms=FIRST_BUILD_MS)
    main = main_area(page)
    expect(main.get_by_text(re.compile(r"^Top 10 of 4\d\d images"))).to_be_visible()
    preset_hits = _hit_captions(page)
    assert len(preset_hits) == 10 and sum("chelsea" in c for c in preset_hits) >= 8, preset_hits
    expect(main.locator('[data-testid="stVegaLiteChart"]')).to_have_count(1)
    screenshot(page, "domain_shift")

    page.get_by_label("Query photo").click()   # the coffee photo: no region yet
    page.get_by_role("option", name="coffee", exact=True).click()
    wait_for_app(page)
    expect(main.get_by_text(re.compile("nothing drawn yet"))).to_be_visible()
    _draw(page, (0.2, 0.15, 0.6, 0.6))            # the cup
    expect(main.get_by_text(re.compile(r"^Top 10 of"))).to_be_visible(timeout=60_000)
    wait_for_app(page)
    drawn_hits = _hit_captions(page)
    assert sum("coffee" in c for c in drawn_hits) >= 6, drawn_hits
    assert "a window of" in " ".join(main.locator('[data-testid="stImageCaption"]').all_inner_texts())
    page.set_viewport_size({"width": 1280, "height": 720})
    wait_for_app(page)
    screenshot(page, "domain_shift_drawn_1280x720")


def test_model_comparison_shows_both_models_and_overlap(page: Page, app_url: str):
    page.goto(f"{app_url}/model_comparison")
    wait_for_app(page, timeout_ms=FIRST_BUILD_MS)
    main = main_area(page)
    expect(main.get_by_text("Top-k overlap")).to_be_visible()
    expect(main.get_by_text(re.compile("^A: Lite0, trained"))).to_be_visible()
    expect(main.get_by_text(re.compile("^B: Lite0, random weights"))).to_be_visible()
    assert len(_hit_captions(page)) == 20
    expect(main.locator('[data-testid="stVegaLiteChart"]')).to_have_count(2)
    open_page(page, page.url)
    screenshot(page, "model_comparison")
