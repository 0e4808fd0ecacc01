"""The home page and the "Model & layers" page, driven in headless Chromium.

Run with ``python -m pytest tests/browser -q`` (needs /usr/bin/chromium; see conftest.py).
Screenshots land in ``screenshots/`` at the repo root.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_helpers import assert_no_exception, main_area, open_page, screenshot, streamlit_server, wait_for_app
from playwright.sync_api import Locator, Page, expect  # noqa: F401

from featurelens.images import get_gallery_image

TILES = '[data-testid="stMain"] canvas.fl-sim-canvas'  # 16 tiles, then the large view (in a shadow root)
N_TILES = 16  # pages/model_layers.py: N_CHANNELS
RERUN_TIMEOUT_MS = 60_000  # a new image runs the model on CPU
# The channels element's state (pages/_ui/similarity_view.py), once its photo and features are decoded.
_STATE_JS = """() => { for (const host of document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')) {
    const root = host.shadowRoot && host.shadowRoot.querySelector('.fl-sim-root');
    if (root && root.__flView.assets && root.__flView.draws > 0) return root.__flView; } return null; }"""


_main, _open = main_area, open_page


def _view(page: Page, expression: str):
    """``expression`` evaluated on the channels element's state ``s`` (after it has drawn)."""
    page.wait_for_function(f"() => ({_STATE_JS})() !== null", timeout=RERUN_TIMEOUT_MS)
    return page.evaluate(f"() => {{ const s = ({_STATE_JS})(); return {expression}; }}")


def _tile_channels(page: Page) -> list[int]:
    """The channel of each tile, in order, as the page sent them."""
    return _view(page, "s.header.views.slice(0, -1).map(v => v.channel)")


def _large_caption(page: Page) -> str:
    return _view(page, "s.views[s.views.length - 1].caption.textContent")


def _click_tile(page: Page, index: int) -> None:
    page.locator(TILES).nth(index).click()


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
    expect(page).to_have_url(re.compile(r"/model_layers/?(\?.*)?$"))  # the page writes its view into the link
    expect(main.get_by_role("heading", name="Model & layers", exact=True)).to_be_visible(
        timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)


@pytest.mark.browser
def test_model_layers_coffee_top5_and_channel_grid_click(page: Page, app_url: str):
    _open(page, f"{app_url}/model_layers")
    main = _main(page)
    expect(main.get_by_role("heading", name="Model & layers", exact=True)).to_be_visible()
    # The shared sidebar (app.py) ran too: it picks the model; the layer is picked on the page.
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_role("combobox", name="Model")).to_be_visible()
    expect(sidebar.get_by_role("combobox", name="Layer")).to_have_count(0)
    expect(main.get_by_role("combobox", name="Layer")).to_be_visible()

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

    # The channel grid: 16 tiles and the large view, all drawn, none cropped.
    tiles = page.locator(TILES)
    expect(tiles).to_have_count(N_TILES + 1)
    tiles.nth(N_TILES).scroll_into_view_if_needed()
    boxes = [tiles.nth(i).bounding_box() for i in range(N_TILES + 1)]
    assert all(b["width"] >= 60 and b["height"] >= 30 for b in boxes), boxes
    assert boxes[-1]["width"] > 3 * boxes[0]["width"], "the large view is not large"
    box = main.locator(".stBidiComponent").bounding_box()  # the element, in the page's own DOM
    assert box and box["height"] >= boxes[-1]["height"], f"channel views cropped: {box}"

    # Pointing at a tile shows its channel large, with no server round trip; a click keeps it.
    channels = _tile_channels(page)
    assert len(channels) == N_TILES and len(set(channels)) == N_TILES, channels
    tile = tiles.nth(2).bounding_box()
    page.mouse.move(tile["x"] + tile["width"] / 2, tile["y"] + tile["height"] / 2)
    assert f"· channel {channels[2]} ·" in _large_caption(page)
    same = _view(page, "Array.from(s.maps[s.maps.length - 1]).every((v, i) => v === s.maps[2][i])")
    assert same, "the large view does not show the hovered tile's channel"
    channel_input = main.get_by_role("spinbutton", name="Channel")
    expect(channel_input).not_to_have_value(str(channels[1]))
    _click_tile(page, 1)
    expect(channel_input).to_have_value(str(channels[1]), timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    page.mouse.move(0, 0)  # the pointer leaves: the large view shows the kept channel
    assert f"· channel {channels[1]} ·" in _large_caption(page)
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
    expect(channel_input).to_have_value(str(channels[2]))
    page.wait_for_function(f"() => {{ const s = ({_STATE_JS})(); return s && s.header.channel.index === {channels[2]}; }}")
    page.mouse.move(0, 0)
    assert f"· channel {channels[2]} ·" in _large_caption(page)


def _layers_table_fits(page: Page) -> None:
    """All four columns of the Layers table are in view: its grid does not scroll sideways
    (the grid draws on a canvas; its scroller is wider inside than its box when columns are cut off)."""
    table = _main(page).locator('[data-testid="stDataFrame"]')
    expect(table).to_be_visible()
    expect(table.locator('[role="columnheader"]')).to_have_count(4)  # the grid fills in after the element shows
    headers = table.locator('[role="columnheader"]').evaluate_all("els => els.map(e => e.innerText)")
    assert headers == ["layer · grid · channels", "stride", "values / image", "module"], headers
    scroller = table.locator(".dvn-scroller")
    expect(scroller).to_be_visible()
    inner, shown = scroller.evaluate("s => [s.scrollWidth, s.clientWidth]")
    assert inner <= shown, f"the Layers table is {inner} px wide in a {shown} px box: columns are cut off"


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1280, 720), (1400, 1000)])
def test_layers_table_shows_every_column_and_the_link_restores_the_channel_view(browser, app_url: str, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        _open(page, f"{app_url}/model_layers?images=coffee&layers=stage3&channel=stage3:7&opacity=0.40")
        main = _main(page)
        expect(main.get_by_role("combobox", name="Layer")).to_have_value("stage 3 · 28×28×40")
        expect(main.get_by_role("spinbutton", name="Channel")).to_have_value("7")
        assert _large_caption(page).startswith("stage 3 · 28×28×40 over the image · channel 7 ·")
        _layers_table_fits(page)
        link = parse_qs(urlsplit(page.url).query)
        assert link == {"images": ["coffee"], "layers": ["stage3"], "channel": ["stage3:7"], "opacity": ["0.40"]}, link
        coffee_tiles = _tile_channels(page)
        _select_gallery_image(page, "chelsea")  # another image: the channel starts again at the strongest one
        page.wait_for_function(f"() => {{ const s = ({_STATE_JS})(); return s && "
                               f"JSON.stringify(s.header.views.slice(0, -1).map(v => v.channel)) !== '{json.dumps(coffee_tiles, separators=(',', ':'))}'; }}",
                               timeout=RERUN_TIMEOUT_MS)
        wait_for_app(page)
        first = _tile_channels(page)[0]
        expect(main.get_by_role("spinbutton", name="Channel")).to_have_value(str(first), timeout=RERUN_TIMEOUT_MS)
        wait_for_app(page)
        assert parse_qs(urlsplit(page.url).query)["channel"] == [f"stage3:{first}"]
        screenshot(page, f"model_layers_link_{size[0]}x{size[1]}")
    finally:
        context.close()
