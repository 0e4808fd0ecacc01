"""The invariance and few-shot scenarios in Chromium: draw a support mask and see the query's
mask; the invariance chart renders; a click on a transformed copy moves the reference to the
point of the original shown there (and a click on padding does nothing). Screenshots at 1280×720
(a projector) land in ``screenshots/``."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from browser_helpers import assert_no_exception, main_area, open_page, screenshot, wait_for_app

VIEWS = '[data-testid="stMain"] canvas.fl-sim-canvas'   # the similarity views (in a shadow root)
# The views' live captions, once the element has drawn (pages/_ui/similarity_view.py).
_CAPTIONS_JS = """() => { for (const host of document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')) {
    const root = host.shadowRoot && host.shadowRoot.querySelector('.fl-sim-root');
    if (root && root.__flView.draws > 0) return root.__flView.views.map(v => v.caption.textContent); } return null; }"""
RERUN_TIMEOUT_MS = 90_000
PROJECTOR = (1280, 720)


def _ref(page: Page) -> tuple[float, float]:
    text = parse_qs(urlsplit(page.url).query)["ref"][-1]
    x, y = (float(v) for v in text.split(","))
    return x, y


def _wait_ref(page: Page, expected: tuple[float, float], tol: float = 0.01) -> None:
    for _ in range(150):
        try:
            x, y = _ref(page)
            if abs(x - expected[0]) <= tol and abs(y - expected[1]) <= tol:
                return
        except KeyError:
            pass
        page.wait_for_timeout(100)
    raise AssertionError(f"the link's reference never became {expected}: {page.url}")


def _click(page: Page, index: int, fx: float, fy: float) -> tuple[float, float]:
    view = page.locator(VIEWS).nth(index)
    view.scroll_into_view_if_needed()
    box = view.bounding_box()
    x, y = round(fx * box["width"]), round(fy * box["height"])
    view.click(position={"x": x, "y": y})
    return x / box["width"], y / box["height"]


def test_invariance_chart_renders_and_a_click_on_a_copy_moves_the_reference(page: Page, app_url: str):
    open_page(page, f"{app_url}/invariance", PROJECTOR, RERUN_TIMEOUT_MS)
    main = main_area(page)
    expect(main.locator('[data-testid="stVegaLiteChart"]')).to_have_count(1)
    expect(page.locator(VIEWS)).to_have_count(9)               # the original and 8 rotations
    page.wait_for_function(f"() => ({_CAPTIONS_JS})() !== null", timeout=RERUN_TIMEOUT_MS)
    assert re.match(r"^180° · at the point -?\d\.\d\d · best", page.evaluate(_CAPTIONS_JS)[5])
    screenshot(page, "invariance_1280x720")

    clicked = _click(page, 5, 0.30, 0.60)          # the 180° copy (after the original, 0°, 45°, 90°, 135°)
    _wait_ref(page, (1 - clicked[0], 1 - clicked[1]))           # 180° about the centre: the opposite point
    wait_for_app(page)
    assert_no_exception(page)

    _click(page, 2, 0.02, 0.02)                                  # the 45° copy's corner: black padding
    page.wait_for_timeout(1500)                                   # no point of the photo: nothing is sent
    wait_for_app(page)
    assert_no_exception(page)
    _wait_ref(page, (1 - clicked[0], 1 - clicked[1]))           # unchanged


def _canvas(page: Page):
    canvas = main_area(page).locator("canvas.upper-canvas").first
    expect(canvas).to_be_visible(timeout=30_000)
    return canvas


def _draw(page: Page, box: tuple[float, float, float, float]) -> None:
    """Paint a zig-zag over ``box`` (fractions of the canvas) with the free-draw brush."""
    canvas = _canvas(page)
    canvas.scroll_into_view_if_needed()
    bounds = canvas.bounding_box()
    x0, y0 = bounds["x"] + box[0] * bounds["width"], bounds["y"] + box[1] * bounds["height"]
    x1, y1 = bounds["x"] + box[2] * bounds["width"], bounds["y"] + box[3] * bounds["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(7):
        page.mouse.move(x1 if i % 2 == 0 else x0, y0 + (y1 - y0) * i / 6, steps=8)
    page.mouse.up()


def test_few_shot_draw_a_support_mask_and_see_the_query_mask(page: Page, app_url: str):
    open_page(page, f"{app_url}/few_shot", PROJECTOR, RERUN_TIMEOUT_MS)
    main = main_area(page)
    expect(main.get_by_text(re.compile(r"^IoU 0\.9\d · Dice"))).to_be_visible()   # the cat preset
    screenshot(page, "few_shot_1280x720")

    main.get_by_role("button", name="Support image").click()    # the pickers fold into popovers
    page.get_by_label("Gallery image", exact=True).click()      # a support photo without a preset mask
    page.get_by_role("option", name="Astronaut Eileen Collins").click()
    wait_for_app(page, timeout_ms=RERUN_TIMEOUT_MS)
    page.keyboard.press("Escape")                                # close the popover
    expect(main.get_by_text(re.compile("The support mask is empty"))).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    _draw(page, (0.15, 0.62, 0.45, 0.85))                        # the orange suit
    caption = main.get_by_text(re.compile(r"mask covers \d+% \(threshold"))
    expect(caption.first).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    wait_for_app(page)
    assert_no_exception(page)
    expect(main.get_by_text(re.compile("The support mask is empty"))).to_have_count(0)
    screenshot(page, "few_shot_drawn_1280x720")


def test_few_shot_a_preset_shows_its_layers_in_the_popover_opened_before(page: Page, app_url: str):
    """A popover's widget the browser drew once keeps its value while closed; a preset applied
    meanwhile must show (and keep) the preset's method and layers (pages._ui.widgets.synced)."""
    open_page(page, f"{app_url}/few_shot", PROJECTOR, RERUN_TIMEOUT_MS)
    main = main_area(page)
    menu = main.get_by_role("button", name="Method & layers")
    menu.click()
    chips = page.get_by_test_id("stMultiSelectTagsContainer")
    expect(chips.get_by_text("stage 7 · 7×7×320")).to_be_visible()     # the cat preset: stage 7 alone
    page.keyboard.press("Escape")
    main.get_by_role("button", name="The flag across photos").click()
    wait_for_app(page, timeout_ms=RERUN_TIMEOUT_MS)
    menu.click()
    for chip in ("stage 3 · 28×28×40", "stage 5 · 14×14×112", "stage 7 · 7×7×320"):
        expect(chips.get_by_text(chip)).to_be_visible()
    page.keyboard.press("Escape")
    main.get_by_role("button", name="The cup, self-similarity").click()   # another rerun: nothing sent back stale
    wait_for_app(page, timeout_ms=RERUN_TIMEOUT_MS)
    expect(main.get_by_text(re.compile(r"^IoU \d\.\d\d · Dice"))).to_be_visible()
    expect(main.get_by_text("Pick at least one layer")).to_have_count(0)
    assert_no_exception(page)
