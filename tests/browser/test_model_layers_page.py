"""The home page and the "Model & layers" page, driven in headless Chromium.

Run with ``python -m pytest tests/browser -q`` (needs /usr/bin/chromium; see conftest.py).
Screenshots land in ``screenshots/`` at the repo root.
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import assert_no_exception, main_area, open_page, screenshot, streamlit_server, wait_for_app
from playwright.sync_api import Locator, Page, expect

from featurelens.similarity import MontageLayout
from featurelens.images import get_gallery_image

# Mirrors pages/model_layers.py: N_CHANNELS, TILE_PX, COLS = 16, 96, 4 (gap 4 px).
LAYOUT = MontageLayout(n_tiles=16, cols=4, tile_px=96)
MONTAGE = '[data-testid="stMain"] img.fl-click-image'  # the one clickable image (in a shadow root)
TILES_CAPTION = re.compile(r"^Tiles, left to right, top to bottom: channels ")
RERUN_TIMEOUT_MS = 60_000  # a new image runs the model on CPU


_main, _open = main_area, open_page


def _tile_channels(page: Page) -> list[int]:
    """The channel numbers of the montage tiles, read from the caption under it."""
    caption = _main(page).get_by_text(TILES_CAPTION)
    expect(caption).to_be_visible()
    return [int(c) for c in TILES_CAPTION.sub("", caption.inner_text().strip()).split(",")]


def _montage(page: Page) -> Locator:
    """The channel grid's image, once it has loaded and is laid out at its column's width."""
    image = page.locator(MONTAGE)
    expect(image).to_be_visible()
    image.evaluate("i => new Promise(done => { const ok = () => i.complete && i.naturalWidth > 0"
                   " && i.getBoundingClientRect().height > 100;"
                   " const poll = () => ok() ? done() : setTimeout(poll, 50); poll(); })")
    return image


def _click_tile(page: Page, index: int) -> None:
    """Click the centre of montage tile ``index``; the montage is stretched to its column, so
    montage pixels are scaled to displayed pixels."""
    image = _montage(page)
    shown_w = image.evaluate("i => i.width")
    scale = shown_w / LAYOUT.size_wh[0]
    x, y = LAYOUT.tile_origin(index)
    half = LAYOUT.tile_px / 2
    image.click(position={"x": (x + half) * scale, "y": (y + half) * scale})


def _chart_bars(chart: Locator) -> dict[str, float]:
    """``{label: probability %}`` from the Top-5 chart's bar marks (vega's aria-labels)."""
    bars = {}
    for aria in chart.locator('[aria-label*="; label: "]').evaluate_all(
            "els => els.map(e => e.getAttribute('aria-label'))"):
        match = re.search(r"probability: ([\d.]+)%; label: (.+?); class:", aria)
        assert match, f"unexpected bar aria-label {aria!r}"
        bars[match[2]] = float(match[1])
    return bars


def _select_gallery_image(page: Page, image_id: str) -> str:
    caption = get_gallery_image(image_id).caption
    _main(page).get_by_role("combobox", name="Gallery image").click()
    page.get_by_role("option", name=re.compile("^" + re.escape(caption))).click()
    expect(_main(page).get_by_role("combobox", name="Gallery image")).to_have_value(caption)
    return caption


@pytest.mark.browser
def test_home_page_links_to_model_layers(page: Page, app_url: str):
    _open(page, f"{app_url}/")
    main = _main(page)
    expect(main.get_by_role("heading", name="FeatureLens", exact=True)).to_be_visible()
    link = main.get_by_role("link", name="Model & layers", exact=True)
    expect(link).to_be_visible()
    screenshot(page, "home")

    link.click()
    expect(page).to_have_url(re.compile(r"/model_layers/?$"))
    expect(main.get_by_role("heading", name="Model & layers", exact=True)).to_be_visible(
        timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)


@pytest.mark.browser
def test_model_layers_coffee_top5_and_channel_grid_click(page: Page, app_url: str):
    _open(page, f"{app_url}/model_layers")
    main = _main(page)
    expect(main.get_by_role("heading", name="Model & layers", exact=True)).to_be_visible()
    # The shared sidebar (app.py) ran too: model and layer pickers are there.
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_role("combobox", name="Model")).to_be_visible()
    expect(sidebar.get_by_role("combobox", name="Layer")).to_be_visible()

    # Gallery → the coffee photo; the Top-5 chart follows with "espresso" on top.
    _select_gallery_image(page, "coffee")
    chart = main.locator('[data-testid="stVegaLiteChart"]')
    expect(chart.locator('[aria-label*="label: espresso;"]')).to_have_count(1, timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    bars = _chart_bars(chart)
    assert len(bars) == 5, bars
    assert max(bars, key=bars.get) == "espresso", bars
    expect(chart.locator("svg text", has_text=re.compile(r"^espresso$"))).to_be_visible()

    # The channel grid: the whole montage, stretched to its column.
    montage = _montage(page)
    natural_w, natural_h, shown_w, shown_h = montage.evaluate(
        "i => [i.naturalWidth, i.naturalHeight, i.width, i.height]")
    assert (natural_w, natural_h) == LAYOUT.size_wh
    assert shown_w >= 300 and abs(shown_h / shown_w - natural_h / natural_w) < 0.02, (shown_w, shown_h)
    box = main.locator(".stBidiComponent").bounding_box()  # the element, in the page's own DOM
    assert box and box["width"] >= shown_w - 1 and box["height"] >= shown_h - 1, f"montage cropped: {box}"

    # Clicking the second tile selects the second channel of the caption.
    channels = _tile_channels(page)
    assert len(channels) == LAYOUT.n_tiles and len(set(channels)) == len(channels), channels
    channel_input = main.get_by_role("spinbutton", name="Channel")
    expect(channel_input).not_to_have_value(str(channels[1]))
    _click_tile(page, 1)
    expect(channel_input).to_have_value(str(channels[1]), timeout=RERUN_TIMEOUT_MS)
    expect(main.get_by_text(re.compile(rf"^Channel {channels[1]} of "))).to_be_visible()
    wait_for_app(page)
    assert_no_exception(page)
    screenshot(page, "model_layers")


@pytest.mark.browser
def test_deep_link_on_fresh_server_runs_the_navigation_app(browser):
    """Regression: with a ``pages/`` folder next to app.py, Streamlit runs the first deep
    link of a fresh server as a v1 multipage page, without app.py (no st.navigation menu,
    no shared sidebar, ``_common.py`` listed as a page) unless the page hands over to app.py
    (``pages._ui.shell.ensure_app_shell``). Needs a server of its own: ``app_url`` is warm."""
    with streamlit_server() as base_url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(f"{base_url}/model_layers")
            nav = page.locator('[data-testid="stSidebarNavLink"] span[label]')
            expect(nav.and_(page.locator('span[label="Model & layers"]'))).to_be_visible(
                timeout=RERUN_TIMEOUT_MS)
            labels = nav.evaluate_all("els => els.map(e => e.getAttribute('label'))")
            assert "Home" in labels and "common" not in labels and "app" not in labels, labels
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(sidebar.get_by_role("combobox", name="Model")).to_be_visible()
            expect(_main(page).get_by_role("heading", name="Model & layers", exact=True)).to_be_visible(
                timeout=RERUN_TIMEOUT_MS)
            assert_no_exception(page)
        finally:
            context.close()


@pytest.mark.browser
def test_typed_channel_wins_after_tile_click(page: Page, app_url: str):
    _open(page, f"{app_url}/model_layers")
    main = _main(page)
    channels = _tile_channels(page)
    channel_input = main.get_by_role("spinbutton", name="Channel")
    _click_tile(page, 1)
    expect(channel_input).to_have_value(str(channels[1]), timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)

    channel_input.fill(str(channels[2]))
    channel_input.press("Enter")
    wait_for_app(page)
    expect(main.get_by_text(re.compile(rf"^Channel {channels[2]} of "))).to_be_visible(timeout=3_000)
    expect(channel_input).to_have_value(str(channels[2]))
