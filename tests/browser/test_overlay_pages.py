"""The overlay pages, "Layer hierarchy" and "Compare images", driven in headless Chromium.

All similarity views of a page are one inline Components v2 element
(``pages/_ui/similarity_view.py``): a ``.fl-sim-root`` with one ``<canvas class="fl-sim-canvas">``
per view, in the element's open shadow root. The views follow the pointer in the browser; a
click commits the reference, the page's fragment reruns, writes the view into the URL's query
string and sends the element its new state (white ring = reference, orange = pin).

The tests check what the element drew, not only that it changed: the canvases' pixels are read
back (lossless), the white ring is located (the only near-white thing over the gray photo at
the default opacity), and on the coarse layers each cell's colour is inverted back to a value
and compared with the map the element computed (``root.__flView.maps``), whose hottest cell
must be the reference cell.

Run with ``python -m pytest tests/browser -q`` (needs /usr/bin/chromium; see conftest.py).
Screenshots land in ``screenshots/`` at the repo root.
"""

from __future__ import annotations

import re

import numpy as np
from browser_helpers import assert_no_exception, main_area, open_page, screenshot, wait_for_app
from playwright.sync_api import Browser, Locator, Page, expect
from sim_view_helpers import (ORANGE, RERUN_TIMEOUT_MS, YELLOW, assert_pixels_show_map, assert_ring_colour,
                              assert_white_ring_at, canvas_rgb, canvas_urls, canvases, click_view, expected_cell,
                              gray_photo, parse_xy, query, ring_pixels, ring_radius, sim_root, view_maps, view_state,
                              wait_query, wait_ref, wait_views, white_ring_centre)

from featurelens.similarity import PIN_RING_SCALE

GRIDS = {"stage2": 56, "stage3": 28, "stage5": 14, "stage7": 7}  # efficientnet_lite0 at 224 px
LAYER_CAPTION = re.compile(r"^stage (\d+) · (\d+)×(\d+)×\d+ · reference cell \(row (\d+), col (\d+)\) · "
                           r"colours -?[\d.]+ to -?[\d.]+$")
BAR = re.compile(r"vector: reference; channel: (\d+);")  # a bar's aria-label (vega's SVG renderer)

_main, _open = main_area, open_page


# --------------------------------------------------------------------------- helpers

def _layer_captions(state: dict) -> dict[str, tuple[int, int, int, int]]:
    """``{layer: (grid_h, grid_w, row, col)}`` from the captions under the views."""
    found = {}
    for text in state["captions"]:
        match = LAYER_CAPTION.match(text.strip())
        if match:
            found[f"stage{match[1]}"] = tuple(int(match[i]) for i in range(2, 6))
    return found


def _assert_reference_is_hottest(map_hw: np.ndarray, ref: tuple[float, float], what: str) -> None:
    """The reference cell is the most similar one (cosine 1 with itself), and others are not."""
    row, col = expected_cell(ref, map_hw.shape)
    assert map_hw[row, col] >= 0.999, f"{what}: reference cell ({row}, {col}) has {map_hw[row, col]:.3f}"
    assert map_hw[row, col] >= map_hw.max() - 1e-6, f"{what}: a cell is more similar than the reference"
    assert np.median(map_hw) <= map_hw[row, col] - 0.3, f"{what}: no contrast around the reference"


def _has_pin_ring(view: np.ndarray, xy: tuple[float, float], radius: float) -> bool:
    """Whether the orange pin ring is drawn around ``xy`` (``radius``: the reference ring's)."""
    mean = ring_pixels(view, xy, radius * PIN_RING_SCALE).mean(axis=0)
    return bool(np.abs(mean - ORANGE).max() <= 30)


def _chips(page: Page, label: str) -> Locator:
    """The selected values of the multiselect labelled ``label``."""
    return _main(page).locator('[data-testid="stMultiSelect"]').filter(has_text=label) \
        .locator('[data-testid="stMultiSelectTagsContainer"] [data-tag]')


def _assert_outlined_cell(view: np.ndarray, cell: tuple[int, int], grid: int, what: str) -> None:
    """The yellow (255, 214, 10) square is drawn around ``cell`` of a ``grid``×``grid`` layer
    (as the element's ``cellBox`` draws it: ``min(W, H) // 150`` px wide) and nowhere else."""
    h, w = view.shape[:2]
    t = max(1, min(h, w) // 150)
    yellow = (view == YELLOW).all(axis=-1)
    top, bottom = cell[0] * h // grid, (cell[0] + 1) * h // grid - 1
    left, right = cell[1] * w // grid, (cell[1] + 1) * w // grid - 1
    outline = np.zeros((h, w), bool)
    outline[top:bottom + 1, left:right + 1] = True
    outline[top + t:bottom + 1 - t, left + t:right + 1 - t] = False
    assert yellow[outline].mean() >= 0.95, f"{what}: the outline of cell {cell} is {yellow[outline].mean():.0%} yellow"
    assert yellow[~outline].sum() <= 4, f"{what}: {yellow[~outline].sum()} yellow pixels elsewhere"


def _radio(page: Page, label: str, within: Locator | None = None) -> Locator:
    return (within or _main(page)).locator('[data-testid="stRadio"]').filter(has_text=label)


def _view_settings(page: Page) -> Locator:
    """The view settings (metric, colour scale, colormap…): in a "Settings" popover, opened
    here, where the page has one."""
    button = _main(page).locator('[data-testid="stPopover"]').get_by_role(
        "button", name=re.compile(r"settings|controls", re.IGNORECASE))
    if not button.count():
        return _main(page)
    button.first.click()
    body = page.locator('[data-testid="stPopoverBody"]')
    expect(body).to_be_visible()
    return body


def _choose(page: Page, group: str, option: str | re.Pattern) -> None:
    radio = _radio(page, group)
    exact = None if isinstance(option, re.Pattern) else True
    radio.get_by_text(option, exact=exact).click()
    expect(radio.get_by_role("radio", name=option, exact=exact)).to_be_checked()


def _all_changed(before: list[str], after: list[str]) -> bool:
    return len(before) == len(after) and all(a != b for a, b in zip(before, after))


# --------------------------------------------------------------------------- Layer hierarchy

def test_layer_hierarchy_click_moves_reference_in_all_views(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy")
    state = wait_views(page, 4)
    assert [v["layer"] for v in state["views"]] == list(GRIDS) and state["mode"] == "layers"
    captions = _layer_captions(state)
    assert {layer: c[:2] for layer, c in captions.items()} == {l: (g, g) for l, g in GRIDS.items()}, captions
    assert query(page)["layers"] == "stage2,stage3,stage5,stage7"
    old_ref = parse_xy(query(page)["ref"])
    assert state["ref"]["xy"] == list(old_ref)
    before = canvas_urls(page)
    old_view = canvas_rgb(page, 3)

    # The cat's other eye (the default reference is on the eye at the left of the photo).
    clicked = click_view(page, 3, 0.68, 0.42)
    q = wait_query(page, "ref", lambda v: parse_xy(v) != old_ref, "a new ref")
    ref = parse_xy(q["ref"])
    assert abs(ref[0] - clicked[0]) <= 0.002 and abs(ref[1] - clicked[1]) <= 0.002, (ref, clicked)
    assert q["images"] == "chelsea" and q["ref_image"] == "0"
    state = wait_ref(page, 4, ref)
    assert _all_changed(before, canvas_urls(page)), "a view did not change"

    # Every layer's caption names the cell under that point.
    assert {layer: c[2:] for layer, c in _layer_captions(state).items()} == \
           {layer: expected_cell(ref, grid) for layer, grid in GRIDS.items()}, (ref, state["captions"])

    # The maps: each layer's hottest cell is the reference cell. The pixels: the white ring sits
    # at the new point in all views, and the coarse layers' colours are their maps'.
    maps, gray = view_maps(page), gray_photo(page, 0)
    for n, (layer, grid) in enumerate(GRIDS.items()):
        assert maps[n].shape == (grid, grid)
        _assert_reference_is_hottest(maps[n], ref, layer)
        view = canvas_rgb(page, n)
        assert view.shape[:2] == gray.shape == (300, 451), (layer, view.shape)
        assert_white_ring_at(view, ref, layer)
        if grid <= 14:
            assert_pixels_show_map(view, gray, maps[n], state["ranges"][n], [ref, old_ref], layer)
    old_ring = white_ring_centre(old_view)
    assert old_ring and abs(old_ring[0] - old_ref[0] * 451) <= 1.5, "the old ring was elsewhere"
    screenshot(page, "layer_hierarchy")


def test_layer_hierarchy_restores_shared_url(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy?images=coffee&layers=stage2,stage3,stage7&ref=0.5000,0.1700"
                "&scale=fixed&cmap=viridis&opacity=0.80")
    main = _main(page)
    state = wait_views(page, 3)
    expect(main.get_by_role("combobox", name="Gallery image")).to_have_value("Cup of coffee")
    chips = _chips(page, "Layers")
    expect(chips).to_have_count(3)
    assert [t.strip() for t in chips.all_inner_texts()] == ["stage 2 · 56×56×24", "stage 3 · 28×28×40",
                                                            "stage 7 · 7×7×320"]
    assert _layer_captions(state) == {layer: (GRIDS[layer], GRIDS[layer], *expected_cell((0.5, 0.17), GRIDS[layer]))
                                      for layer in ("stage2", "stage3", "stage7")}, state["captions"]
    settings = _view_settings(page)
    expect(_radio(page, "Colour scale", settings).get_by_role("radio", name="Fixed")).to_be_checked()
    expect(settings.get_by_role("combobox", name="Colormap")).to_have_value("Viridis")
    expect(settings.get_by_role("slider", name="Opacity")).to_have_attribute("aria-valuetext", "0.80")
    page.keyboard.press("Escape")
    # … and the element got them: fixed cosine range, viridis's first colour, opacity 0.8
    assert (state["ref"], state["scale"], state["opacity"], state["metric"]) == \
           ({"image": 0, "xy": [0.5, 0.17]}, "fixed", 0.8, "cosine"), state
    assert state["ranges"] == [[-1, 1]] * 3, state["ranges"]
    assert state["cmap_lut_0"] == [68, 1, 84], state["cmap_lut_0"]  # viridis starts dark purple, magma black
    q = query(page)
    assert (q["images"], q["layers"], q["ref"], q["scale"], q["cmap"], q["opacity"]) == \
           ("coffee", "stage2,stage3,stage7", "0.5000,0.1700", "fixed", "viridis", "0.80"), q


def test_layer_hierarchy_shared_link_after_click_shows_same_views(browser: Browser, page: Page, app_url: str):
    """The sender redraws at the link's 4-decimal reference once Python answers, so a shared
    link shows the very same pixels, whatever sub-pixel point was clicked."""
    _open(page, f"{app_url}/layer_hierarchy")
    wait_views(page, 4)
    clicked = click_view(page, 1, 0.553, 0.801)  # the fur
    q = wait_query(page, "ref", lambda v: abs(parse_xy(v)[0] - clicked[0]) < 0.002, "the clicked ref")
    state = wait_ref(page, 4, parse_xy(q["ref"]))
    mine, my_maps = canvas_urls(page), view_maps(page)
    shared_url = page.url
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        other = context.new_page()
        _open(other, shared_url)
        theirs = wait_views(other, 4)
        assert other.url == shared_url, "opening a shared link changed it"
        for key in ("views", "ref", "pin", "channel", "metric", "scale", "opacity", "ranges", "captions", "committed"):
            assert theirs[key] == state[key], (key, theirs[key], state[key])
        their_maps = view_maps(other)
        assert all(np.array_equal(a, b) for a, b in zip(my_maps, their_maps)), "the maps differ"
        assert canvas_urls(other) == mine, "the shared link's views differ from the sender's pixels"
    finally:
        context.close()


def test_layer_hierarchy_pin_reference(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy")
    main = _main(page)
    state = wait_views(page, 4)
    ref = parse_xy(query(page)["ref"])
    assert "pin" not in query(page) and state["pin"] is None
    expect(main.get_by_text("Cosine(reference, pinned)")).to_have_count(0)
    radius = ring_radius((300, 451))
    for n, layer in enumerate(GRIDS):  # no orange ring yet
        assert not _has_pin_ring(canvas_rgb(page, n), ref, radius), f"{layer}: an orange ring before pinning"

    main.get_by_role("button", name="Pin reference").click()
    q = wait_query(page, "pin", lambda v: True, "pin=")
    assert q["pin"] == f"0:{ref[0]:.4f},{ref[1]:.4f}", q
    expect(main.get_by_role("button", name="Clear pin")).to_be_enabled()
    wait_views(page, 4, "(s) => s.pin !== null")
    wait_for_app(page)
    # The pin is where the reference is: its wider orange ring surrounds the white one.
    assert view_state(page)["pin"] == {"image": 0, "xy": list(ref)}
    for n, layer in enumerate(GRIDS):
        view = canvas_rgb(page, n)
        assert_ring_colour(view, ref, ORANGE, radius * PIN_RING_SCALE, f"{layer} pin")
        assert_white_ring_at(view, ref, layer)
    metric = main.locator('[data-testid="stMetric"]').filter(has_text="Cosine(reference, pinned)")
    expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text("1.000")

    clicked = click_view(page, 0, 0.25, 0.8)
    q = wait_query(page, "ref", lambda v: parse_xy(v) != ref, "a new ref")
    new_ref = parse_xy(q["ref"])
    assert abs(new_ref[0] - clicked[0]) <= 0.002 and abs(new_ref[1] - clicked[1]) <= 0.002, (new_ref, clicked)
    assert q["pin"] == f"0:{ref[0]:.4f},{ref[1]:.4f}", "the click moved the pin"
    state = wait_ref(page, 4, new_ref)
    assert state["pin"] == {"image": 0, "xy": list(ref)}
    for n, layer in enumerate(GRIDS):  # white ring at the click, orange ring at the pin
        view = canvas_rgb(page, n)
        assert_white_ring_at(view, new_ref, layer)
        assert_ring_colour(view, ref, ORANGE, radius * PIN_RING_SCALE, f"{layer} pin")
        assert not _has_pin_ring(view, new_ref, radius), f"{layer}: the pin ring followed the click"
    expect(metric).to_be_visible()
    expect(metric.locator('[data-testid="stMetricValue"]')).not_to_have_text("1.000")
    value = float(metric.locator('[data-testid="stMetricValue"]').inner_text())
    assert -1.0 <= value < 0.999, value
    assert_no_exception(page)
    screenshot(page, "layer_hierarchy_pinned")


def test_layer_hierarchy_shared_link_restores_channel_view(page: Page, app_url: str):
    """Regression: the page used to read the chart layer from the session before the
    'Feature vector of layer' selectbox existed, so a link's channel view was not shown."""
    _open(page, f"{app_url}/layer_hierarchy?images=chelsea&layers=stage2,stage7&channel=5")
    state = wait_views(page, 2)
    expect(_main(page).get_by_role("spinbutton", name=re.compile("^Channel view"))).to_have_value("5")
    assert query(page).get("channel") == "stage7:5"  # an old bare channel is rewritten with its layer
    assert state["channel"] == {"layer": "stage7", "index": 5, "all": False}
    assert state["captions"][1].startswith("stage 7 · 7×7×320 · channel 5 · colours "), state["captions"]
    assert LAYER_CAPTION.match(state["captions"][0]), "stage 2 still shows similarity"
    # stage 7's view is channel 5's activation (as decoded from what Python sent), not a similarity
    off = sim_root(page).evaluate("""root => { const s = root.__flView, g = s.assets.grids[s.header.views[1].grid];
        let off = 0; s.maps[1].forEach((v, p) => { off = Math.max(off, Math.abs(v - g.feats[p * g.c + 5])); });
        return off; }""")
    assert off == 0, off
    channel_map = view_maps(page)[1]
    assert state["ranges"][1] == [float(channel_map.min()), float(channel_map.max())], "not on the channel's own range"

    # issue 9: the same channel number in every layer that has it (stage 2 has 24 channels)
    _main(page).get_by_text("…in every layer that has it").click()
    wait_views(page, 2, "(s) => s.channel && s.channel.all")
    wait_for_app(page)
    off = sim_root(page).evaluate("""root => { const s = root.__flView, g = s.assets.grids[s.header.views[0].grid];
        let off = 0; s.maps[0].forEach((v, p) => { off = Math.max(off, Math.abs(v - g.feats[p * g.c + 5])); });
        return off; }""")
    assert off == 0, off
    assert view_state(page)["captions"][0].startswith("stage 2 · 56×56×24 · channel 5 · colours ")


def test_layer_hierarchy_link_with_too_many_layers_keeps_five(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy?images=chelsea&layers=stem,stage1,stage2,stage3,stage5,stage7")
    state = wait_views(page, 5)
    layers = [v["layer"] for v in state["views"]]
    assert len(set(layers)) == 5 and set(layers) < {"stem", "stage1", "stage2", "stage3", "stage5", "stage7"}, layers
    assert query(page)["layers"] == ",".join(layers)
    expect(canvases(page)).to_have_count(5)


def test_layer_hierarchy_clicking_a_bar_shows_that_channel(page: Page, app_url: str):
    """IFeaLiD's channel view: a click on a bar of the feature-vector chart picks its channel.
    The bar is found by its channel (the chart's order and length may change), not its place."""
    _open(page, f"{app_url}/layer_hierarchy?images=chelsea&layers=stage2,stage3&ref=0.3700,0.3500")
    wait_views(page, 2)
    before = canvas_urls(page)
    main = _main(page)
    bars = main.locator('[data-testid="stVegaLiteChart"] path[aria-label*="vector: reference; channel: "]')
    expect(bars.first).to_be_attached(timeout=RERUN_TIMEOUT_MS)
    labels = bars.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
    channels = [int(BAR.search(label)[1]) for label in labels]
    assert len(channels) >= 8 and len(set(channels)) == len(channels), channels
    channel = channels[2]  # a tall bar, wherever the chart puts it
    bars.nth(2).click(force=True)
    expect(main.get_by_role("spinbutton", name=re.compile("^Channel view"))).to_have_value(
        str(channel), timeout=RERUN_TIMEOUT_MS)
    state = wait_views(page, 2, "(s, c) => s.channel && s.channel.index === c", channel)
    wait_for_app(page)
    assert state["channel"] == {"layer": "stage3", "index": channel, "all": False}
    after = canvas_urls(page)
    assert after[1] != before[1] and after[0] == before[0], "only the chart layer's view switches to the channel"
    assert view_state(page)["captions"][1].startswith(f"stage 3 · 28×28×40 · channel {channel} · colours ")
    wait_query(page, "channel", lambda v: v == f"stage3:{channel}", f"channel=stage3:{channel}")


# --------------------------------------------------------------------------- Compare images

def test_compare_images_click_second_image_and_switch_views(page: Page, app_url: str):
    _open(page, f"{app_url}/compare_images")
    main = _main(page)
    state = wait_views(page, 4)
    assert state["mode"] == "images" and query(page)["ref_image"] == "0"
    assert state["captions"][0] == "Chelsea the cat · reference", state["captions"]
    before = canvas_urls(page)

    clicked = click_view(page, 1, 0.45, 0.3)  # the astronaut's face
    q = wait_query(page, "ref_image", lambda v: v == "1", "ref_image=1")
    ref = parse_xy(q["ref"])
    assert abs(ref[0] - clicked[0]) <= 0.002 and abs(ref[1] - clicked[1]) <= 0.002, (ref, clicked)
    state = wait_ref(page, 4, ref, image=1)
    assert _all_changed(before, canvas_urls(page)), "a view did not change"
    assert state["captions"][1] == "Astronaut Eileen Collins · reference", state["captions"]
    assert re.fullmatch(r"Chelsea the cat · best match -?[\d.]+", state["captions"][0]), state["captions"]
    views = [canvas_rgb(page, n) for n in range(4)]
    assert_white_ring_at(views[1], ref, "astronaut")
    assert all(white_ring_centre(v) is None for n, v in enumerate(views) if n != 1), "a ring outside the ref's image"
    maps = view_maps(page)
    _assert_reference_is_hottest(maps[1], ref, "astronaut, stage 5")
    assert all(m.max() < 0.999 for n, m in enumerate(maps) if n != 1), "another image matches perfectly"
    assert len({tuple(r) for r in state["ranges"]}) == 1, "the images do not share one colour range"
    assert_pixels_show_map(views[1], gray_photo(page, 1), maps[1], state["ranges"][1], [ref], "astronaut")
    screenshot(page, "compare_all")

    # Two images: the cat with its grid and the reference square, the astronaut as a heat map.
    _choose(page, "View", re.compile(r"^Two images"))
    state = wait_views(page, 2, "(s) => s.mode === 'pair'")
    wait_for_app(page)
    assert_no_exception(page)
    wait_query(page, "mode", lambda v: v == "pair", "mode=pair")
    pair_ref = parse_xy(query(page)["ref"])  # the pair view's reference is in the left image
    assert query(page)["ref_image"] == "0"
    assert state["sizes"][0] == [451, 300] and state["sizes"][1] == [512, 512], state["sizes"]
    cell = expected_cell(pair_ref, 14)
    assert state["captions"][0] == f"Chelsea the cat · chosen square (row {cell[0]}, col {cell[1]}) outlined in yellow"
    assert re.fullmatch(r"Astronaut Eileen Collins · best match -?[\d.]+ \(yellow square\)", state["captions"][1])
    _assert_outlined_cell(canvas_rgb(page, 0), cell, 14, "cat")
    best = np.unravel_index(np.argmax(view_maps(page)[1]), (14, 14))
    _assert_outlined_cell(canvas_rgb(page, 1), tuple(int(v) for v in best), 14, "astronaut's best match")
    screenshot(page, "compare_pair")

    # NMF parts: part maps of all four images, the swatches, and one part highlighted.
    _choose(page, "View", "NMF parts")
    images = main.locator('[data-testid="stImage"] img')
    expect(images).to_have_count(4, timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    expect(canvases(page)).to_have_count(0)
    swatches = main.locator('[data-testid="stMarkdownContainer"] span', has_text=re.compile(r"^part \d$"))
    expect(swatches).to_have_count(4)
    assert swatches.all_inner_texts() == [f"part {p}" for p in range(4)]
    page.wait_for_function("(sel) => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth)",
                           arg='[data-testid="stMain"] [data-testid="stImage"] img')
    all_parts = images.evaluate_all("els => els.map(e => e.src)")
    wait_query(page, "mode", lambda v: v == "parts", "mode=parts")
    _choose(page, "Highlight a part", "part 1")
    page.wait_for_function("([sel, old]) => { const s = [...document.querySelectorAll(sel)];"
                           " return s.length === old.length && s.every((i, n) => i.src !== old[n]"
                           " && i.complete && i.naturalWidth); }",
                           arg=['[data-testid="stMain"] [data-testid="stImage"] img', all_parts],
                           timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    wait_query(page, "part", lambda v: v == "1", "part=1")
    screenshot(page, "compare_parts")


def test_compare_images_restores_shared_url(page: Page, app_url: str):
    _open(page, f"{app_url}/compare_images?images=chelsea,coffee&layers=stage5&ref=0.3700,0.3500"
                "&ref_image=0&mode=all")
    main = _main(page)
    state = wait_views(page, 2)
    chips = _chips(page, "Gallery images")
    expect(chips).to_have_count(2)
    assert [t.strip() for t in chips.all_inner_texts()] == ["Chelsea the cat", "Cup of coffee"]
    expect(main.get_by_role("combobox", name="Layer")).to_have_value("stage 5 · 14×14×112")
    expect(_radio(page, "View").get_by_role("radio", name=re.compile(r"^All images"))).to_be_checked()
    assert state["mode"] == "images" and state["ref"] == {"image": 0, "xy": [0.37, 0.35]}
    assert [v["layer"] for v in state["views"]] == ["stage5", "stage5"]
    assert state["captions"][0] == "Chelsea the cat · reference"
    assert re.fullmatch(r"Cup of coffee · best match -?[\d.]+", state["captions"][1]), state["captions"]
    cat, coffee = canvas_rgb(page, 0), canvas_rgb(page, 1)
    assert_white_ring_at(cat, (0.37, 0.35), "cat")
    assert white_ring_centre(coffee) is None
    maps = view_maps(page)
    _assert_reference_is_hottest(maps[0], (0.37, 0.35), "cat, stage 5")
    assert_pixels_show_map(cat, gray_photo(page, 0), maps[0], state["ranges"][0], [(0.37, 0.35)], "cat")
