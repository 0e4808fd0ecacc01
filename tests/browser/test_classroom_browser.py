"""Classroom checks in headless Chromium (issue 9): the views come first on a projector's screen,
no label breaks inside a word, and presentation mode opens from one link and steps by keys."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from browser_helpers import assert_no_exception, main_area, open_page, screenshot, wait_for_app
from playwright.sync_api import expect

VIEWS = '[data-testid="stMain"] canvas.fl-sim-canvas'  # the similarity views (in a shadow root)
PAGES = ["layer_hierarchy", "compare_images", "compare_images?mode=pair", "model_layers", "invariance", "few_shot",
         "domain_shift", "model_comparison"]
PHOTO = '[data-testid="stMain"] [data-testid="stImage"] img'  # Model & layers: the photo its labels are about
CANVAS = '[data-testid="stMain"] canvas.upper-canvas'  # the image to draw a region (or a support mask) on
FIRST_USE_TIMEOUT_MS = 240_000   # the search pages build their dataset's cache on first use (420 images)
FIRST_VIEWS = {"model_layers": PHOTO, "few_shot": CANVAS, "domain_shift": CANVAS, "model_comparison": CANVAS}

# Every word of every visible text in the main column (shadow roots included) that the browser
# laid out on more than one line: a label broken inside a word.
_BROKEN_WORDS_JS = """() => {
    const broken = [];
    const visit = (root) => {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const text = node.textContent;
            for (const match of text.matchAll(/[^\\s·,;:()/—–-]{4,}/g)) {
                const range = document.createRange();
                range.setStart(node, match.index); range.setEnd(node, match.index + match[0].length);
                const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
                if (lines.size > 1) broken.push(match[0]);
            }
        }
        for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
    };
    visit(document.querySelector('[data-testid="stMain"]'));
    return broken;
}"""


def _settled_box(locator, timeout_ms: int = 60_000) -> dict:
    """The element's box once it is visible and laid out: a rerun may remount it between the
    visibility check and the measurement (its box is None then), so measure until two agree."""
    page = locator.page
    previous = None
    for _ in range(timeout_ms // 250):
        expect(locator).to_be_visible(timeout=timeout_ms)
        box = locator.bounding_box()
        if box is not None and box == previous:
            return box
        previous = box
        page.wait_for_timeout(250)
    raise AssertionError(f"{locator} never settled (last box {previous})")


def _first_view_box(page, selector: str = VIEWS):
    if selector == CANVAS:
        return _settled_box(page.locator(CANVAS).first)
    if selector != VIEWS:
        view = page.locator(selector).first
        expect(view).to_be_visible(timeout=60_000)
        view.evaluate("i => new Promise(done => { const poll = () => i.complete && i.naturalWidth ? done() "
                      ": setTimeout(poll, 50); poll(); })")
        return _settled_box(view)
    views = page.locator(VIEWS)
    expect(views.first).to_be_visible(timeout=60_000)
    page.wait_for_function("""() => [...document.querySelectorAll('*')].some(h => h.shadowRoot &&
        h.shadowRoot.querySelector('.fl-sim-root') && h.shadowRoot.querySelector('.fl-sim-root').__flView.draws > 0)""")
    return _settled_box(views.first)


@pytest.mark.parametrize("size", [(1280, 720), (1024, 768)])
@pytest.mark.parametrize("path", PAGES)
def test_the_first_view_is_on_screen_unscrolled_and_no_label_breaks_mid_word(browser, app_url, path, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    try:
        page = context.new_page()
        open_page(page, f"{app_url}/{path}", timeout_ms=FIRST_USE_TIMEOUT_MS)
        box = _first_view_box(page, FIRST_VIEWS.get(path, VIEWS))
        scrolled = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTop")
        assert scrolled == 0
        assert box["y"] >= 0 and box["y"] + box["height"] <= size[1], f"first view {box} not inside {size}"
        assert box["height"] >= 80, f"the first view is only {box['height']:.0f} px high"
        assert page.evaluate(_BROKEN_WORDS_JS) == []
        screenshot(page, f"classroom_{path.split('?')[0]}_{size[0]}x{size[1]}")
    finally:
        context.close()


def test_presentation_mode_opens_from_a_link_and_steps_by_keys(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        page.goto(f"{app_url}/layer_hierarchy?images=chelsea&present=1")
        wait_for_app(page)
        assert_no_exception(page)
        expect(page.locator('[data-testid="stSidebar"]')).to_be_hidden()
        main = main_area(page)
        notice = main.locator(".fl-notice")
        expect(notice).to_be_visible()
        assert float(notice.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 24
        box = _first_view_box(page)
        assert box["y"] + box["height"] <= 720 and box["width"] >= 250, box

        page.keyboard.press("PageDown")  # the first preset, its note in large type
        expect(main.get_by_text("(1/4)")).to_be_visible(timeout=30_000)
        wait_for_app(page)
        first_note = notice.inner_text()
        page.keyboard.press("PageDown")
        expect(main.get_by_text("(2/4)")).to_be_visible(timeout=30_000)
        wait_for_app(page)
        assert notice.inner_text() != first_note

        page.keyboard.press("4")  # one layer, as large as the screen allows
        page.wait_for_function(f"() => document.querySelectorAll('*') && [...document.querySelectorAll('*')]"
                               ".some(h => h.shadowRoot && h.shadowRoot.querySelectorAll('canvas.fl-sim-canvas').length === 1)",
                               timeout=30_000)
        wait_for_app(page)
        big = page.locator(VIEWS).first.bounding_box()
        assert big["width"] > 2 * box["width"] and big["y"] + big["height"] <= 720, (box, big)
        assert parse_qs(urlsplit(page.url).query).get("present") == ["1"]
        screenshot(page, "presentation_one_layer")

        page.goto(page.url)  # the link restores presentation mode in a new session
        wait_for_app(page)
        expect(main_area(page).locator(".fl-notice")).to_be_visible()
        expect(page.locator('[data-testid="stSidebar"]')).to_be_hidden()
    finally:
        context.close()


def test_presentation_mode_and_a_stale_link_on_a_page_with_a_drawing_canvas(browser, app_url):
    """Few-shot keeps no view in its link: ``present=1`` still presents, the notes on what the link
    lost (an ignored parameter, an unknown model) survive the canvas's first reruns until
    dismissed, and Exit brings the sidebar back."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        open_page(page, f"{app_url}/few_shot?present=1&layers=stage7&model=nosuch")
        expect(page.locator(CANVAS).first).to_be_visible(timeout=60_000)
        wait_for_app(page)
        page.wait_for_timeout(2_000)
        wait_for_app(page)
        main = main_area(page)
        expect(main.get_by_text("Shared link: ignored the parameter layers")).to_be_visible()
        expect(main.get_by_text("Shared link: ignored model='nosuch'")).to_be_visible()
        expect(page.locator('[data-testid="stSidebar"]')).to_be_hidden()
        assert parse_qs(urlsplit(page.url).query) == {"present": ["1"]}
        expect(main.get_by_text("(1/4)")).to_be_visible()    # the first view is the first preset's
        page.keyboard.press("PageDown")
        expect(main.get_by_text("(2/4)")).to_be_visible(timeout=30_000)
        wait_for_app(page)
        screenshot(page, "presentation_few_shot")
        main.get_by_role("button", name="Dismiss").click()
        expect(main.get_by_text("Shared link:")).to_have_count(0, timeout=30_000)
        main.get_by_role("button", name="Exit").click()
        expect(page.locator('[data-testid="stSidebar"]')).to_be_visible(timeout=30_000)
        expect(main.get_by_role("heading", name="Few-shot segmentation")).to_be_visible()
        assert "present" not in parse_qs(urlsplit(page.url).query)
    finally:
        context.close()
