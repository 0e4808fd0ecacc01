"""The overlay pages, "Layer hierarchy" and "Compare images", driven in headless Chromium.

Every overlay view is a ``pages/_ui/clickable_image.py`` element (Streamlit Components v2,
inline in the page): an ``<img class="fl-click-image">`` in the element's open shadow root,
whose ``src`` is a JPEG data URL. A click there reports the point normalised by the shown
size; the page redraws all views (white ring = reference) and writes the view into the
URL's query string.

The tests check the views' pixels, not only that they changed: the data URLs are decoded
and the white ring is located (it is the only near-white thing an overlay can contain at
the default opacity), and on the coarse layers the heat colour is inverted back to a
normalised similarity (``pixel = gray·(1 − α) + colormap(v)·α``) to check that the
reference cell is the most similar one.

Run with ``python -m pytest tests/browser -q`` (needs /usr/bin/chromium; see conftest.py).
Screenshots land in ``screenshots/`` at the repo root.
"""

from __future__ import annotations

import base64
import io
import math
import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
from browser_helpers import assert_no_exception, main_area, open_page, screenshot, wait_for_app
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from featurelens.images import get_gallery_image
from featurelens.images import load_image
from featurelens.similarity import PIN_RING_SCALE, draw_ring, base_image, colormap_lut, upsample_map
from featurelens.images import display_image

VIEWS = '[data-testid="stMain"] img.fl-click-image'  # Playwright's CSS locators enter shadow roots
RERUN_TIMEOUT_MS = 60_000  # a new image set runs the model on CPU
GRIDS = {"stage2": 56, "stage3": 28, "stage5": 14, "stage7": 7}  # efficientnet_lite0 at 224 px
LAYER_CAPTION = re.compile(r"^stage (\d+) · (\d+)×(\d+)×\d+ · reference cell \(row (\d+), col (\d+)\)")

# Each view's <img> src, or null while it has not loaded and laid out an image. The views sit
# in shadow roots (one per element), which document.querySelectorAll does not enter.
_SRCS_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')]
    .map(host => host.shadowRoot && host.shadowRoot.querySelector('img.fl-click-image')).filter(Boolean)
    .map(img => img.complete && img.naturalWidth > 0 && img.width > 0 && img.height > 0 ? img.src : null)"""


# --------------------------------------------------------------------------- helpers

_main, _open = main_area, open_page


def _view_srcs(page: Page) -> list[str | None]:
    return page.evaluate(_SRCS_JS)


def _wait_views(page: Page, n: int) -> list[str]:
    """Wait for exactly ``n`` overlay views with loaded images; their srcs."""
    page.wait_for_function(f"() => {{ const s = ({_SRCS_JS})(); return s.length === {n} && s.every(Boolean); }}",
                           timeout=RERUN_TIMEOUT_MS)
    return _view_srcs(page)


def _wait_all_changed(page: Page, before: list[str]) -> list[str]:
    """Wait until every view shows a different image than in ``before``, then for the app."""
    page.wait_for_function(
        f"(before) => {{ const s = ({_SRCS_JS})(); return s.length === before.length"
        " && s.every((src, i) => src && src !== before[i]); }",
        arg=before, timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    return _wait_views(page, len(before))


def _view_img(page: Page, index: int) -> Locator:
    return page.locator(VIEWS).nth(index)


def _click_view(page: Page, index: int, fx: float, fy: float) -> tuple[float, float]:
    """Click view ``index`` at the fraction ``(fx, fy)`` of its displayed size (whole pixels);
    return the normalised point the page should receive."""
    img = _view_img(page, index)
    width, height = img.evaluate("i => [i.width, i.height]")
    x, y = round(fx * width), round(fy * height)
    img.click(position={"x": x, "y": y})
    return x / width, y / height


def _query(page: Page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(page.url).query).items()}


def _xy(text: str) -> tuple[float, float]:
    x, y = (float(v) for v in text.split(","))
    return x, y


def _wait_query(page: Page, key: str, predicate, what: str) -> dict[str, str]:
    """Wait until the URL's ``key`` satisfies ``predicate`` (the page updates the URL at the
    end of its run); the whole query."""
    for _ in range(100):
        query = _query(page)
        if key in query and predicate(query[key]):
            return query
        page.wait_for_timeout(100)
    raise AssertionError(f"URL never got {what}: {page.url}")


def _decode(src: str) -> np.ndarray:
    header, data = src.split(",", 1)
    assert header.startswith("data:image/"), header[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def _ring_radius(image_hw: tuple[int, ...]) -> float:
    """The rings' radius as ``overlays.render_overlay`` draws them: 3 % of the shorter side."""
    return max(4.0, round(0.03 * min(image_hw[:2])))


def _ring_centre(image: np.ndarray, min_pixels: int = 20) -> tuple[float, float] | None:
    """Centre ``(x, y)`` in pixels of the white reference ring, or None if there is none.
    Over a gray photo at opacity 0.6 no heat colour reaches (230, 230, 230)."""
    ys, xs = np.nonzero((image >= 230).all(axis=-1))
    if len(xs) < min_pixels:
        return None
    return (float(xs.min() + xs.max() + 1) / 2, float(ys.min() + ys.max() + 1) / 2)


def _layer_captions(page: Page) -> dict[str, tuple[int, int, int, int]]:
    """``{layer: (grid_h, grid_w, row, col)}`` from the captions under the views."""
    found = {}
    for text in _main(page).locator('[data-testid="stCaptionContainer"]').all_inner_texts():
        match = LAYER_CAPTION.match(text.strip())
        if match:
            found[f"stage{match[1]}"] = tuple(int(match[i]) for i in range(2, 6))
    return found


def _expected_cell(ref: tuple[float, float], grid: int) -> tuple[int, int]:
    return min(math.floor(ref[1] * grid), grid - 1), min(math.floor(ref[0] * grid), grid - 1)


def _gray_photo(image_id: str) -> np.ndarray:
    """The photo under the heat map as the page draws it (display size, gray base)."""
    return base_image(display_image(load_image(get_gallery_image(image_id).path)), "gray")[..., 0]


def _cell_heat(view: np.ndarray, gray: np.ndarray, grid: int, ref: tuple[float, float],
               opacity: float = 0.6, cmap: str = "magma") -> np.ndarray:
    """Invert the blend of a nearest-upsampled view: the normalised similarity of each cell
    of a ``grid``×``grid`` layer (median over its pixels, away from the reference ring)."""
    h, w = gray.shape
    assert view.shape[:2] == (h, w), (view.shape, gray.shape)
    heat = (view.astype(np.float32) - (1 - opacity) * gray[..., None]) / opacity
    lut = colormap_lut(cmap).astype(np.float32)
    value = np.argmin(((heat[:, :, None, :] - lut[None, None, ::3, :]) ** 2).sum(-1), axis=-1) * 3 / 255
    cell_id = upsample_map(np.arange(grid * grid, dtype=np.float32).reshape(grid, grid), (h, w), "nearest")
    yy, xx = np.mgrid[0:h, 0:w]
    away = np.hypot(xx + 0.5 - ref[0] * w, yy + 0.5 - ref[1] * h) > _ring_radius(gray.shape) + 5
    cells = np.full(grid * grid, np.nan)
    ids = cell_id.astype(int)
    for cell in range(grid * grid):
        sel = (ids == cell) & away
        if sel.any():
            cells[cell] = np.median(value[sel])
    return cells.reshape(grid, grid)


def _assert_reference_is_hottest(view: np.ndarray, gray: np.ndarray, grid: int, ref: tuple[float, float],
                                 what: str) -> None:
    cells = _cell_heat(view, gray, grid, ref)
    row, col = _expected_cell(ref, grid)
    at_ref = cells[row, col]
    assert at_ref >= 0.9, f"{what}: reference cell ({row}, {col}) only {at_ref:.2f} of the colour range"
    assert at_ref >= np.nanmax(cells) - 0.05, f"{what}: a cell is hotter than the reference:\n{np.round(cells, 2)}"
    assert np.nanmedian(cells) <= at_ref - 0.3, f"{what}: no contrast around the reference:\n{np.round(cells, 2)}"


def _assert_ring_at(view: np.ndarray, ref: tuple[float, float], what: str, tol_px: float = 2.5) -> None:
    h, w = view.shape[:2]
    centre = _ring_centre(view)
    assert centre is not None, f"{what}: no white reference ring"
    assert abs(centre[0] - ref[0] * w) <= tol_px and abs(centre[1] - ref[1] * h) <= tol_px, \
        f"{what}: ring at {centre}, reference at {(ref[0] * w, ref[1] * h)}"


def _chips(page: Page, label: str) -> Locator:
    """The selected values of the multiselect labelled ``label``."""
    return _main(page).locator('[data-testid="stMultiSelect"]').filter(has_text=label) \
        .locator('[data-testid="stMultiSelectTagsContainer"] [data-tag]')


def _assert_pin_at(view: np.ndarray, pin: tuple[float, float], what: str) -> None:
    """The orange pin ring (255, 140, 0) is drawn around ``pin``: the pixels where the
    renderer puts it are orange on average. JPEG smears a 2-px ring's colour into its black
    outline (about (215, 147, 69) here); the white ring or a heat colour over the gray photo
    is never that much redder than blue (magma's reddest, (241, 106, 87) at 60 %, gives < 95)."""
    h, w = view.shape[:2]
    mask = np.zeros((h, w, 3), np.uint8)
    draw_ring(mask, (pin[0] * w, pin[1] * h), (255, 255, 255), _ring_radius(view.shape) * PIN_RING_SCALE)
    on_ring = mask[..., 0] == 255
    mean = view[on_ring].mean(axis=0)
    r, g, b = mean
    assert r >= 180 and 100 <= g <= 190 and r - b >= 110, f"{what}: pin ring pixels average {mean.round()}"


def _assert_outlined_cell(view: np.ndarray, cell: tuple[int, int], grid: int) -> None:
    """The pair view's left image outlines ``cell`` in yellow (255, 214, 10), as
    ``views.grid_view`` draws it (2 px on a 300 px image; JPEG smears thin lines, so
    compare the outline's average colour with the other cells' outlines)."""
    h, w = view.shape[:2]

    def outline_mean(row: int, col: int) -> np.ndarray:
        top, bottom = int(row * h / grid), int((row + 1) * h / grid) - 1
        left, right = int(col * w / grid), int((col + 1) * w / grid) - 1
        mask = np.zeros((h, w), bool)
        mask[top:bottom + 1, left:right + 1] = True
        mask[top + 2:bottom - 1, left + 2:right - 1] = False
        return view[mask].astype(float).mean(axis=0)

    r, g, b = outline_mean(*cell)
    assert r >= 190 and g >= 160 and b <= 120, f"cell {cell} outline averages {(r, g, b)}: not yellow"
    yellowness = {(row, col): (lambda m: (m[0] + m[1]) / 2 - m[2])(outline_mean(row, col))
                  for row in range(grid) for col in range(grid)}
    runner_up = max(v for rc, v in yellowness.items() if rc != cell)
    assert yellowness[cell] >= runner_up + 30, f"cell {cell} is not the one outlined ({yellowness[cell]:.0f} " \
                                               f"vs {runner_up:.0f} elsewhere)"


def _radio(page: Page, label: str) -> Locator:
    return _main(page).locator('[data-testid="stRadio"]').filter(has_text=label)


def _choose(page: Page, group: str, option: str) -> None:
    radio = _radio(page, group)
    radio.get_by_text(option, exact=True).click()
    expect(radio.get_by_role("radio", name=option, exact=True)).to_be_checked()


def _ring_safe_click(width: int, height: int, natural_wh: tuple[int, int], fx: float, fy: float,
                     same: bool) -> tuple[float, float]:
    """A click fraction near ``(fx, fy)`` (whole displayed pixels) whose ring, drawn at the
    exact click and at the URL's 4-decimal rounding of it, comes out pixel-identical
    (``same=True``) or not (``same=False``, the hard case; when Pillow's ring rounding makes
    every nearby click identical, the first candidate)."""
    w_nat, h_nat = natural_wh
    for dx in range(0, 12):
        for dy in range(0, 12):
            x, y = round(fx * width) + dx, round(fy * height) + dy
            exact, rounded = (x / width, y / height), (round(x / width, 4), round(y / height, 4))
            a, b = np.zeros((h_nat, w_nat, 3), np.uint8), np.zeros((h_nat, w_nat, 3), np.uint8)
            radius = _ring_radius((h_nat, w_nat))
            draw_ring(a, (exact[0] * w_nat, exact[1] * h_nat), (255, 255, 255), radius)
            draw_ring(b, (rounded[0] * w_nat, rounded[1] * h_nat), (255, 255, 255), radius)
            if np.array_equal(a, b) == same:
                return x / width, y / height
    if not same:
        return round(fx * width) / width, round(fy * height) / height
    raise AssertionError("no suitable click point found")


# --------------------------------------------------------------------------- Layer hierarchy

def test_layer_hierarchy_click_moves_reference_in_all_views(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy")
    before = _wait_views(page, 4)
    captions = _layer_captions(page)
    assert set(captions) == set(GRIDS), captions
    assert {layer: c[:2] for layer, c in captions.items()} == {l: (g, g) for l, g in GRIDS.items()}
    old_ref = _xy(_query(page)["ref"])
    assert _query(page)["layers"] == "stage2,stage3,stage5,stage7"

    # The cat's other eye (the default reference is on the eye at the left of the photo).
    clicked = _click_view(page, 3, 0.68, 0.42)
    after = _wait_all_changed(page, before)

    # The URL carries the new reference: the click normalised by the displayed size.
    query = _wait_query(page, "ref", lambda v: _xy(v) != old_ref, "a new ref")
    ref = _xy(query["ref"])
    assert abs(ref[0] - clicked[0]) <= 0.02 and abs(ref[1] - clicked[1]) <= 0.02, (ref, clicked)
    assert query["images"] == "chelsea" and query["ref_image"] == "0"

    # Every layer's caption names the cell under that point.
    captions = _layer_captions(page)
    assert {layer: c[2:] for layer, c in captions.items()} == \
           {layer: _expected_cell(ref, grid) for layer, grid in GRIDS.items()}, (ref, captions)

    # The pixels: the white ring sits at the new point in all views, and the coarse layers
    # are hottest in the reference cell.
    gray = _gray_photo("chelsea")
    views = dict(zip(GRIDS, (_decode(src) for src in after)))
    for layer, view in views.items():
        assert view.shape[:2] == gray.shape, (layer, view.shape)
        _assert_ring_at(view, ref, layer)
    for layer in ("stage5", "stage7"):
        _assert_reference_is_hottest(views[layer], gray, GRIDS[layer], ref, layer)
    old_ring = _ring_centre(_decode(before[3]))
    assert old_ring and abs(old_ring[0] - old_ref[0] * gray.shape[1]) <= 2.5, "the old ring was elsewhere"
    screenshot(page, "layer_hierarchy")


def test_layer_hierarchy_restores_shared_url(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy?images=coffee&layers=stage2,stage3,stage7&ref=0.5000,0.1700"
                "&scale=fixed&cmap=viridis&opacity=0.80")
    main = _main(page)
    _wait_views(page, 3)
    expect(main.get_by_role("combobox", name="Gallery image")).to_have_value("Cup of coffee")
    chips = _chips(page, "Layers")
    expect(chips).to_have_count(3)
    assert [t.strip() for t in chips.all_inner_texts()] == ["stage 2 · 56×56×24", "stage 3 · 28×28×40",
                                                            "stage 7 · 7×7×320"]
    captions = _layer_captions(page)
    assert captions == {layer: (GRIDS[layer], GRIDS[layer], *_expected_cell((0.5, 0.17), GRIDS[layer]))
                        for layer in ("stage2", "stage3", "stage7")}, captions
    expect(_radio(page, "Colour scale").get_by_role("radio", name="Fixed")).to_be_checked()
    expect(main.get_by_role("combobox", name="Colormap")).to_have_value("Viridis")
    expect(main.get_by_role("slider", name="Opacity")).to_have_attribute("aria-valuetext", "0.80")
    query = _query(page)
    assert (query["images"], query["layers"], query["ref"], query["scale"], query["cmap"], query["opacity"]) == \
           ("coffee", "stage2,stage3,stage7", "0.5000,0.1700", "fixed", "viridis", "0.80"), query


def _shared_pair(browser: Browser, app_url: str, page: Page, ring_safe: bool):
    """Click a view, open the page's URL in a new context; both pages' view srcs."""
    _open(page, f"{app_url}/layer_hierarchy")
    before = _wait_views(page, 4)
    width, height, *natural_wh = _view_img(page, 1).evaluate("i => [i.width, i.height, i.naturalWidth,"
                                                             " i.naturalHeight]")
    fx, fy = _ring_safe_click(width, height, tuple(natural_wh), 0.55, 0.8, same=ring_safe)  # the fur
    _click_view(page, 1, fx, fy)
    mine = _wait_all_changed(page, before)
    _wait_query(page, "ref", lambda v: abs(_xy(v)[0] - fx) < 0.02, "the clicked ref")
    shared_url = page.url
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        other = context.new_page()
        _open(other, shared_url)
        theirs = _wait_views(other, 4)
        assert _layer_captions(other) == _layer_captions(page)
        assert other.url == shared_url, "opening a shared link changed it"
    finally:
        context.close()
    return (fx, fy), mine, theirs


def test_layer_hierarchy_shared_link_after_click_shows_same_views(browser: Browser, page: Page, app_url: str):
    (fx, fy), mine, theirs = _shared_pair(browser, app_url, page, ring_safe=True)
    assert mine == theirs, "the shared link's overlays differ from the sender's"


def test_layer_hierarchy_shared_link_is_pixel_identical_for_any_click(browser: Browser, page: Page,
                                                                      app_url: str):
    (fx, fy), mine, theirs = _shared_pair(browser, app_url, page, ring_safe=False)
    a, b = (_decode(src).astype(int) for src in (mine[1], theirs[1]))
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    away = np.hypot(xx - fx * w, yy - fy * h) > _ring_radius(a.shape) + 20  # JPEG blocks next to the ring
    assert np.abs(a - b)[away].max() == 0, "the views differ away from the ring, too"
    assert mine == theirs, "the shared link's overlays differ from the sender's (ring pixels)"


def test_layer_hierarchy_pin_reference(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy")
    main = _main(page)
    before = _wait_views(page, 4)
    ref = _xy(_query(page)["ref"])
    assert "pin" not in _query(page)
    expect(main.get_by_text("Cosine(reference, pinned)")).to_have_count(0)

    main.get_by_role("button", name="Pin reference").click()
    query = _wait_query(page, "pin", lambda v: True, "pin=")
    assert query["pin"] == f"0:{ref[0]:.4f},{ref[1]:.4f}", query
    expect(main.get_by_role("button", name="Clear pin")).to_be_enabled()
    wait_for_app(page)
    # The pin is where the reference is: its wider orange ring surrounds the white one.
    pinned = _wait_all_changed(page, before)
    for layer, src in zip(GRIDS, pinned):
        _assert_pin_at(_decode(src), ref, layer)
    before = pinned
    metric = main.locator('[data-testid="stMetric"]').filter(has_text="Cosine(reference, pinned)")
    expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text("1.000")

    clicked = _click_view(page, 0, 0.25, 0.8)
    after = _wait_all_changed(page, before)
    query = _wait_query(page, "ref", lambda v: _xy(v) != ref, "a new ref")
    new_ref = _xy(query["ref"])
    assert abs(new_ref[0] - clicked[0]) <= 0.02 and abs(new_ref[1] - clicked[1]) <= 0.02, (new_ref, clicked)
    assert query["pin"] == f"0:{ref[0]:.4f},{ref[1]:.4f}", "the click moved the pin"
    for layer, src in zip(GRIDS, after):  # white ring at the click, orange ring at the pin
        view = _decode(src)
        _assert_ring_at(view, new_ref, layer)
        _assert_pin_at(view, ref, layer)
    expect(metric).to_be_visible()
    expect(metric.locator('[data-testid="stMetricValue"]')).not_to_have_text("1.000")
    value = float(metric.locator('[data-testid="stMetricValue"]').inner_text())
    assert -1.0 <= value < 0.999, value
    wait_for_app(page)
    assert_no_exception(page)
    screenshot(page, "layer_hierarchy_pinned")


def test_layer_hierarchy_shared_link_restores_channel_view(page: Page, app_url: str):
    """Regression: the page used to read the chart layer from the session before the
    'Feature vector of layer' selectbox existed, so a link's channel view was not shown."""
    _open(page, f"{app_url}/layer_hierarchy?images=chelsea&layers=stage2,stage7&channel=5")
    _wait_views(page, 2)
    expect(_main(page).get_by_role("spinbutton", name=re.compile("^Channel view"))).to_have_value("5")
    assert _query(page).get("channel") == "stage7:5"  # an old bare channel is rewritten with its layer
    expect(_main(page).get_by_text(re.compile(r"^stage 7 · 7×7×320 · .*channel view$"))).to_be_visible(
        timeout=3_000)


def test_layer_hierarchy_link_with_too_many_layers_keeps_five(page: Page, app_url: str):
    _open(page, f"{app_url}/layer_hierarchy?images=chelsea&layers=stem,stage1,stage2,stage3,stage5,stage7")
    _wait_views(page, 5)


# --------------------------------------------------------------------------- Compare images

def test_compare_images_click_second_image_and_switch_views(page: Page, app_url: str):
    _open(page, f"{app_url}/compare_images")
    main = _main(page)
    before = _wait_views(page, 4)
    assert _query(page)["ref_image"] == "0"
    expect(main.get_by_text(re.compile(r"^Chelsea the cat · reference$"))).to_be_visible()

    clicked = _click_view(page, 1, 0.45, 0.3)  # the astronaut's face
    after = _wait_all_changed(page, before)
    query = _wait_query(page, "ref_image", lambda v: v == "1", "ref_image=1")
    ref = _xy(query["ref"])
    assert abs(ref[0] - clicked[0]) <= 0.02 and abs(ref[1] - clicked[1]) <= 0.02, (ref, clicked)
    expect(main.get_by_text(re.compile(r"^Astronaut Eileen Collins · reference$"))).to_be_visible()
    expect(main.get_by_text(re.compile(r"^Chelsea the cat · best match -?[\d.]+$"))).to_be_visible()
    views = [_decode(src) for src in after]
    _assert_ring_at(views[1], ref, "astronaut")
    assert all(_ring_centre(v) is None for n, v in enumerate(views) if n != 1), "a ring outside the reference image"
    _assert_reference_is_hottest(views[1], _gray_photo("astronaut"), 14, ref, "astronaut, stage 5")
    screenshot(page, "compare_all")

    # Two images: the cat with its grid and the reference square, the astronaut as a heat map.
    _choose(page, "View", "Two images (grid → heat map)")
    _wait_views(page, 1)
    wait_for_app(page)
    assert_no_exception(page)
    _wait_query(page, "mode", lambda v: v == "pair", "mode=pair")
    left = _decode(_view_srcs(page)[0])
    assert left.shape[:2] == (300, 451)
    pair_ref = _xy(_query(page)["ref"])  # the pair view's reference is in the left image
    assert _query(page)["ref_image"] == "0"
    _assert_outlined_cell(left, _expected_cell(pair_ref, 14), 14)
    right = main.locator('[data-testid="stImage"] img')
    expect(right).to_have_count(1)
    assert right.evaluate("i => i.complete && i.naturalWidth") == 512
    expect(main.get_by_text(re.compile(r"^Astronaut Eileen Collins · best match -?[\d.]+$"))).to_be_visible()
    screenshot(page, "compare_pair")

    # NMF parts: part maps of all four images, the swatches, and one part highlighted.
    _choose(page, "View", "NMF parts")
    images = main.locator('[data-testid="stImage"] img')
    expect(images).to_have_count(4, timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    expect(page.locator(VIEWS)).to_have_count(0)
    swatches = main.locator('[data-testid="stMarkdownContainer"] span', has_text=re.compile(r"^part \d$"))
    expect(swatches).to_have_count(4)
    assert swatches.all_inner_texts() == [f"part {p}" for p in range(4)]
    page.wait_for_function("(sel) => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth)",
                           arg='[data-testid="stMain"] [data-testid="stImage"] img')
    all_parts = images.evaluate_all("els => els.map(e => e.src)")
    _wait_query(page, "mode", lambda v: v == "parts", "mode=parts")
    _choose(page, "Highlight a part", "part 1")
    page.wait_for_function("([sel, old]) => { const s = [...document.querySelectorAll(sel)];"
                           " return s.length === old.length && s.every((i, n) => i.src !== old[n]"
                           " && i.complete && i.naturalWidth); }",
                           arg=['[data-testid="stMain"] [data-testid="stImage"] img', all_parts],
                           timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    _wait_query(page, "part", lambda v: v == "1", "part=1")
    screenshot(page, "compare_parts")


def test_compare_images_restores_shared_url(page: Page, app_url: str):
    _open(page, f"{app_url}/compare_images?images=chelsea,coffee&layers=stage5&ref=0.3700,0.3500"
                "&ref_image=0&mode=all")
    main = _main(page)
    srcs = _wait_views(page, 2)
    chips = _chips(page, "Gallery images")
    expect(chips).to_have_count(2)
    assert [t.strip() for t in chips.all_inner_texts()] == ["Chelsea the cat", "Cup of coffee"]
    expect(main.get_by_role("combobox", name="Layer")).to_have_value("stage 5 · 14×14×112")
    expect(_radio(page, "View").get_by_role("radio", name="All images (ISO)")).to_be_checked()
    expect(main.get_by_text(re.compile(r"^Chelsea the cat · reference$"))).to_be_visible()
    expect(main.get_by_text(re.compile(r"^Cup of coffee · best match -?[\d.]+$"))).to_be_visible()
    cat, coffee = (_decode(src) for src in srcs)
    _assert_ring_at(cat, (0.37, 0.35), "cat")
    assert _ring_centre(coffee) is None
    _assert_reference_is_hottest(cat, _gray_photo("chelsea"), 14, (0.37, 0.35), "cat, stage 5")


def test_layer_hierarchy_clicking_a_bar_shows_that_channel(page: Page, app_url: str):
    """IFeaLiD's channel view: a click on a bar of the feature-vector chart picks its channel."""
    _open(page, f"{app_url}/layer_hierarchy?images=chelsea&layers=stage2,stage3&ref=0.3700,0.3500")
    before = _wait_views(page, 2)
    main = _main(page)
    bar = main.locator('[aria-label*="vector: reference; channel: 7;"]').first
    expect(bar).to_be_attached(timeout=RERUN_TIMEOUT_MS)
    bar.click(force=True)
    expect(main.get_by_role("spinbutton", name=re.compile("^Channel view"))).to_have_value("7",
                                                                                         timeout=RERUN_TIMEOUT_MS)
    after = _wait_views(page, 2)
    assert after[1] != before[1] and after[0] == before[0], "only the chart layer's view switches to the channel"
    expect(main.get_by_text(re.compile(r"^stage 3 · 28×28×40 · .*channel view$"))).to_be_visible()
    _wait_query(page, "channel", lambda v: v == "stage3:7", "channel=stage3:7")
