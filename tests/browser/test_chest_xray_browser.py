"""Chest X-ray in Chromium, on a server whose home holds the NIH recipe's cache of real fixture
X-rays: the heart preset is drawn on the canvas, results and box plots render, and the right lung
gives its own numbers. Screenshots at 1280×720 (a projector) land in ``screenshots/``."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from browser_helpers import main_area, open_page, screenshot, streamlit_server, wait_for_app
from tests.test_chest_xray import N_WITH, N_WITHOUT, xray_home


@pytest.fixture(scope="module")
def xray_app(tmp_path_factory):
    home = xray_home(tmp_path_factory.getbasetemp())
    with streamlit_server(env={"FEATURELENS_HOME": str(home)}) as base_url:
        yield base_url


def test_heart_preset_shows_results_and_box_plots(page: Page, xray_app: str):
    open_page(page, f"{xray_app}/chest_xray", (1280, 720))
    main = main_area(page)
    expect(main.get_by_text(f"Top 10 of {N_WITH + N_WITHOUT - 1} X-rays")).to_be_visible()
    expect(main.get_by_text(re.compile("photo model trained on ImageNet"))).to_be_visible()
    canvas = main.locator("canvas.upper-canvas").first
    expect(canvas).to_be_visible()
    screenshot(page, "chest_xray_first_view_1280x720")
    box = canvas.bounding_box()   # views first: the X-ray to mark is on a projector's screen, unscrolled
    assert box["y"] >= 0 and box["y"] + box["height"] <= 720, box
    hits = [c for c in main.locator('[data-testid="stImageCaption"]').all_inner_texts() if c.startswith("#")]
    assert len(hits) == 10, hits
    expect(main.locator('[data-testid="stVegaLiteChart"]')).to_have_count(2)
    expect(main.get_by_text(re.compile(r"An image with Cardiomegaly scores higher than one without it \d+% of"))
           ).to_be_visible()
    screenshot(page, "chest_xray_heart_1280x720")
    main.get_by_text("right lung", exact=True).first.click()
    wait_for_app(page)
    expect(main.get_by_text(re.compile(r"right lung query"))).to_be_visible()
    screenshot(page, "chest_xray_right_lung_1280x720")
