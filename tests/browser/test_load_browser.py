"""Several browser sessions clicking the Layer hierarchy page at once (issue 8, "under load").

With one ``streamlit-image-coordinates`` iframe per view, 20 sessions clicking together left
2–7 sessions with a view 0 px high: the iframe's script announced itself ready from its
``<head>``, the first render message could arrive before ``<img id="image">`` was parsed,
and its handler threw, so the iframe never got an image or a height. The views are now one
inline element (``pages/_ui/similarity_view.py``) that draws every view on a canvas sized from
the photo's known aspect, and a click is one small message (issue 10).

Here 6 pages in 6 contexts (separate sessions) open the page together and click a view in
every page at once, three times over. A view is blank if its canvas is 0 px high, was never
drawn (``__flView.draws == 0``) or has undrawn (transparent) or uniform pixels; after every
round each page must show the clicked reference: Python's reply drawn, the white ring of every
view at the URL's new ``ref``.
"""

from __future__ import annotations

import random
import time

from browser_helpers import assert_no_exception, wait_for_app
from playwright.sync_api import Browser, Page
from sim_view_helpers import CANVASES, ROOTS_JS, parse_xy, query

PAGES, ROUNDS, VIEWS_PER_PAGE = 6, 3, 4
TIME_LIMIT_S = 60.0

# Each view as [draws, shown width, shown height, canvas width, canvas height, opaque fraction,
# pixel std, centre x, centre y of the near-white (reference ring) pixels or null]. It reads
# every canvas: call it once a page is ready, not while polling.
_VIEWS_JS = f"""() => {{ const roots = {ROOTS_JS};
    if (roots.length !== 1) return [];
    const s = roots[0].__flView;
    return s.views.map(v => {{ const c = v.canvas, box = c.getBoundingClientRect();
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let opaque = 0, sum = 0, sq = 0, x0 = Infinity, x1 = -1, y0 = Infinity, y1 = -1, white = 0;
        for (let i = 0, p = 0; i < px.length; i += 4, p += 1) {{
            if (px[i + 3] === 255) opaque += 1;
            const l = (px[i] + px[i + 1] + px[i + 2]) / 3; sum += l; sq += l * l;
            if (px[i] >= 230 && px[i + 1] >= 230 && px[i + 2] >= 230) {{
                const x = p % c.width, y = (p - x) / c.width; white += 1;
                x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }} }}
        const n = px.length / 4, mean = sum / n;
        return [s.draws, box.width, box.height, c.width, c.height, opaque / n,
                Math.sqrt(Math.max(sq / n - mean * mean, 0)),
                white >= 20 ? (x0 + x1 + 1) / 2 : null, white >= 20 ? (y0 + y1 + 1) / 2 : null];
    }}); }}"""
# Ready: one element, its data decoded and drawn, every view laid out, and (after a click) the
# reference Python sent back is the URL's ``ref``.
_READY_JS = f"""(ref) => {{ const roots = {ROOTS_JS};
    if (roots.length !== 1) return false;
    const s = roots[0].__flView;
    if (!s.assets || !s.draws || !s.header || s.views.length !== {VIEWS_PER_PAGE}) return false;
    if (!s.views.every(v => v.canvas.getBoundingClientRect().height > 0)) return false;
    if (ref === null) return true;
    const url = new URLSearchParams(location.search).get('ref');
    if (!url || url === ref) return false;
    const [x, y] = url.split(',').map(Number);
    return Math.abs(s.header.ref.xy[0] - x) < 1e-6 && Math.abs(s.header.ref.xy[1] - y) < 1e-6
        && !s.hover && Math.abs(s.committed.xy[0] - x) < 1e-6; }}"""


def _assert_views_shown(page: Page, what: str) -> None:
    """Every view is drawn: a nonzero height with its photo's aspect, every pixel painted, not
    uniform, and the white reference ring at the URL's ``ref``."""
    views = page.evaluate(_VIEWS_JS)
    ref = parse_xy(query(page)["ref"])
    assert len(views) == VIEWS_PER_PAGE, f"{what}: {len(views)} views"
    for n, (draws, width, height, canvas_w, canvas_h, opaque, std, ring_x, ring_y) in enumerate(views):
        assert draws > 0, f"{what}: view {n} was never drawn"
        assert width > 50 and height > 0, f"{what}: view {n} is {width}×{height} px"
        assert abs(height / width - canvas_h / canvas_w) < 0.02, \
            f"{what}: view {n} is {width:.0f}×{height:.0f} px for a {canvas_w}×{canvas_h} canvas"
        assert opaque == 1.0, f"{what}: view {n} has {1 - opaque:.0%} undrawn pixels"
        assert std > 10, f"{what}: view {n} is uniform (pixel std {std:.1f})"
        at = (ref[0] * canvas_w, ref[1] * canvas_h)
        assert ring_x is not None and abs(ring_x - at[0]) <= 1.5 and abs(ring_y - at[1]) <= 1.5, \
            f"{what}: view {n}'s ring is at {(ring_x, ring_y)}, the URL's ref {ref} at {at}"


def test_six_sessions_clicking_at_once_never_leave_a_view_blank(browser: Browser, app_url: str):
    start = time.monotonic()
    rng = random.Random(8)
    contexts = [browser.new_context(viewport={"width": 1280, "height": 720}) for _ in range(PAGES)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:  # all six load together: goto returns once the request is sent
            page.goto(f"{app_url}/layer_hierarchy", wait_until="commit")
        for n, page in enumerate(pages):
            page.wait_for_function(_READY_JS, arg=None, timeout=90_000, polling=100)
            wait_for_app(page)
            assert_no_exception(page)
            _assert_views_shown(page, f"page {n} opened")

        for round_ in range(ROUNDS):
            refs = [query(page)["ref"] for page in pages]
            for page in pages:  # one click in every page, back to back: the server gets them together
                view = page.locator(CANVASES).nth(rng.randrange(VIEWS_PER_PAGE))
                view.scroll_into_view_if_needed()
                box = view.bounding_box()
                assert box and box["height"] > 0, f"round {round_}: a view to click is {box}"
                page.mouse.click(round(box["x"] + box["width"] * rng.uniform(0.1, 0.9)),
                                 round(box["y"] + box["height"] * rng.uniform(0.1, 0.9)))
            for n, page in enumerate(pages):
                what = f"round {round_}, page {n}"
                page.wait_for_function(_READY_JS, arg=refs[n], timeout=30_000, polling=100)
                wait_for_app(page, quiet_ms=300)
                assert_no_exception(page)
                _assert_views_shown(page, what)
    finally:
        for context in contexts:
            context.close()
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT_S, f"{PAGES} sessions × {ROUNDS} rounds took {elapsed:.0f} s"
