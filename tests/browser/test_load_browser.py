"""Several browser sessions clicking the Layer hierarchy page at once (issue 8, "under load").

With one ``streamlit-image-coordinates`` iframe per view, 20 sessions clicking together left
2–7 sessions with a view 0 px high: the iframe's script announced itself ready from its
``<head>``, the first render message could arrive before ``<img id="image">`` was parsed,
and its handler threw, so the iframe never got an image or a height. The views are now
inline elements (``pages/_ui/clickable_image.py``) sized from the image's known aspect.

Here 6 pages in 6 contexts (separate sessions) open the page together and click a view in
every page at once, three times over: every view of every page must show an image with a
height that matches its aspect, and every view must change after each round of clicks.
"""

from __future__ import annotations

import random
import time
from urllib.parse import parse_qs, urlsplit

from browser_helpers import assert_no_exception, wait_for_app
from playwright.sync_api import Browser, Page

PAGES, ROUNDS, VIEWS_PER_PAGE = 6, 3, 4
TIME_LIMIT_S = 60.0
VIEWS = '[data-testid="stMain"] img.fl-click-image'  # Playwright's CSS locators enter shadow roots

# Each view as [src, shown width, shown height, natural width, natural height]; the views sit
# in shadow roots, which document.querySelectorAll does not enter.
_VIEWS_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')]
    .map(host => host.shadowRoot && host.shadowRoot.querySelector('img.fl-click-image')).filter(Boolean)
    .map(img => { const box = img.getBoundingClientRect();
                  return [img.complete ? img.src : '', box.width, box.height, img.naturalWidth, img.naturalHeight]; })"""
_READY_JS = f"""(before) => {{ const views = ({_VIEWS_JS})();
    return views.length === {VIEWS_PER_PAGE} && views.every((v, i) => v[0] && v[2] > 0 && v[3] > 0
        && (!before || v[0] !== before[i])); }}"""


def _views(page: Page) -> list[list]:
    return page.evaluate(_VIEWS_JS)


def _assert_views_shown(page: Page, what: str) -> list[str]:
    """Every view has a loaded image, a nonzero height and its image's aspect; their srcs."""
    views = _views(page)
    assert len(views) == VIEWS_PER_PAGE, f"{what}: {len(views)} views"
    for n, (src, width, height, natural_w, natural_h) in enumerate(views):
        assert src.startswith("data:image/") and natural_w > 0, f"{what}: view {n} has no image"
        assert width > 50 and height > 0, f"{what}: view {n} is {width}×{height} px"
        assert abs(height / width - natural_h / natural_w) < 0.02, \
            f"{what}: view {n} is {width:.0f}×{height:.0f} px for a {natural_w}×{natural_h} image"
    return [v[0] for v in views]


def _ref(page: Page) -> str | None:
    return parse_qs(urlsplit(page.url).query).get("ref", [None])[-1]


def test_six_sessions_clicking_at_once_never_leave_a_view_blank(browser: Browser, app_url: str):
    start = time.monotonic()
    rng = random.Random(8)
    contexts = [browser.new_context(viewport={"width": 1280, "height": 720}) for _ in range(PAGES)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:  # all six load together: goto returns once the request is sent
            page.goto(f"{app_url}/layer_hierarchy", wait_until="commit")
        srcs = []
        for n, page in enumerate(pages):
            page.wait_for_function(_READY_JS, arg=None, timeout=90_000)
            wait_for_app(page)
            assert_no_exception(page)
            srcs.append(_assert_views_shown(page, f"page {n} opened"))

        for round_ in range(ROUNDS):
            refs = [_ref(page) for page in pages]
            for page in pages:  # one click in every page, back to back: the server gets them together
                view = page.locator(VIEWS).nth(rng.randrange(VIEWS_PER_PAGE))
                box = view.bounding_box()
                assert box and box["height"] > 0, f"round {round_}: a view to click is {box}"
                view.click(position={"x": box["width"] * rng.uniform(0.1, 0.9),
                                     "y": box["height"] * rng.uniform(0.1, 0.9)})
            for n, page in enumerate(pages):
                what = f"round {round_}, page {n}"
                page.wait_for_function(_READY_JS, arg=srcs[n], timeout=30_000)
                wait_for_app(page, quiet_ms=300)
                assert_no_exception(page)
                srcs[n] = _assert_views_shown(page, what)
                page.wait_for_function("(old) => new URLSearchParams(location.search).get('ref') !== old",
                                       arg=refs[n], timeout=10_000)
    finally:
        for context in contexts:
            context.close()
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT_S, f"{PAGES} sessions × {ROUNDS} rounds took {elapsed:.0f} s"
