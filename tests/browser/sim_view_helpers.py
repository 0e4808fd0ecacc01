"""Helpers for browser tests of the similarity views (``pages/_ui/similarity_view.py``).

Each set of views is one inline Components v2 element: a ``.fl-sim-root`` in the element's open
shadow root (host ``[data-testid="stBidiComponentIsolated"]``), one ``<canvas
class="fl-sim-canvas">`` per view. Playwright's CSS locators enter shadow roots;
``document.querySelectorAll`` does not, so the JS here walks the hosts itself. What the element
computed is on ``root.__flView`` (maps, ranges, header, committed, hover, views…); the pixels
are read back from the canvases (``toDataURL``, lossless PNG).

Import with ``from sim_view_helpers import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import base64
import io
import math
from urllib.parse import parse_qs, urlsplit

import numpy as np
from browser_helpers import assert_no_exception, wait_for_app
from PIL import Image
from playwright.sync_api import Locator, Page

from featurelens.similarity import CELL_COLOR, MARKER_COLORS, PIN_RING_SCALE, colormap_lut

ROOT = '[data-testid="stMain"] .fl-sim-root'  # Playwright's CSS locators enter shadow roots
CANVASES = f"{ROOT} canvas.fl-sim-canvas"
RERUN_TIMEOUT_MS = 60_000  # a new image set runs the model on CPU
WHITE, ORANGE, YELLOW = MARKER_COLORS["reference"], MARKER_COLORS["pinned"], CELL_COLOR

# Every .fl-sim-root of the main area (one per similarity element).
ROOTS_JS = """[...document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')]
    .map(host => host.shadowRoot && host.shadowRoot.querySelector('.fl-sim-root')).filter(Boolean)"""

# A summary of one element's state, JSON-able (maps left out: see :func:`view_maps`).
STATE_JS = """(root) => { const s = root.__flView, h = s.header || {};
    return {draws: s.draws, dataCount: s.dataCount, decoded: !!s.assets,
            mode: h.mode, views: h.views, ref: h.ref, pin: h.pin, channel: h.channel, metric: h.metric,
            scale: h.scale, opacity: h.opacity, cmap_lut_0: h.lut && h.lut.slice(0, 3),
            committed: s.committed, hover: s.hover, ranges: s.ranges,
            captions: s.views.map(v => v.caption.textContent),
            sizes: s.views.map(v => [v.canvas.width, v.canvas.height]),
            boxes: s.views.map(v => { const b = v.canvas.getBoundingClientRect(); return [b.width, b.height]; })}; }"""


def sim_root(page: Page) -> Locator:
    """The page's one similarity element (strict: two would fail)."""
    return page.locator(ROOT)


def canvases(page: Page) -> Locator:
    return page.locator(CANVASES)


def view_state(page: Page) -> dict:
    return sim_root(page).evaluate(STATE_JS)


def wait_views(page: Page, n: int, until: str = "() => true", arg=None, timeout_ms: int = RERUN_TIMEOUT_MS) -> dict:
    """Wait for exactly one similarity element with ``n`` views, its data decoded and drawn,
    every canvas laid out with a height, and the JS predicate ``until(state, arg)`` true
    (``state``: :data:`STATE_JS`'s object); return that state."""
    page.wait_for_function(
        f"""([arg, until]) => {{ const roots = {ROOTS_JS};
            if (roots.length !== 1) return false;
            const s = roots[0].__flView;
            if (!s.assets || !s.draws || !s.header) return false;
            // the decoded set is the header's (not the previous set's, still decoding the new one)
            const photos = s.header.assets.photos;
            const same = (p, i) => p.width === photos[i].width && p.height === photos[i].height;
            if (s.assets.photos.length !== photos.length || s.assets.grids.length !== s.header.assets.grids.length
                || !s.assets.photos.every(same)) return false;
            if (s.views.length !== {n} || s.header.views.length !== {n}) return false;
            if (!s.views.every(v => v.canvas.getBoundingClientRect().height > 0)) return false;
            return eval(until)(({STATE_JS})(roots[0]), arg); }}""",
        arg=[arg, until], timeout=timeout_ms)
    return view_state(page)


def wait_ref(page: Page, n: int, xy: tuple[float, float], image: int | None = None, tol: float = 0.002) -> dict:
    """Wait until Python's reply carries the reference ``xy`` (rounded as a link writes it)
    and the element has drawn it, then for the app to go idle; the state."""
    wait_views(page, n, "(s, a) => Math.abs(s.ref.xy[0] - a[0]) <= a[3] && Math.abs(s.ref.xy[1] - a[1]) <= a[3]"
                        " && (a[2] === null || s.ref.image === a[2])"
                        " && Math.abs(s.committed.xy[0] - s.ref.xy[0]) < 1e-9", [xy[0], xy[1], image, tol])
    wait_for_app(page)
    assert_no_exception(page)
    return view_state(page)


def view_maps(page: Page) -> list[np.ndarray | None]:
    """Each view's map as the element drew it (float32, grid-shaped), None for a grid view."""
    raw = sim_root(page).evaluate("root => { const s = root.__flView; return s.maps.map((m, i) => m && "
                                  "[Array.from(m), s.assets.grids[s.header.views[i].grid].h, "
                                  "s.assets.grids[s.header.views[i].grid].w]); }")
    return [None if r is None else np.asarray(r[0], np.float32).reshape(r[1], r[2]) for r in raw]


def png_pixels(data_url: str) -> np.ndarray:
    header, data = data_url.split(",", 1)
    assert header == "data:image/png;base64", header[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def canvas_urls(page: Page) -> list[str]:
    """Every view's pixels as a PNG data URL (equal strings: identical pixels)."""
    return sim_root(page).evaluate("root => root.__flView.views.map(v => v.canvas.toDataURL('image/png'))")


def canvas_rgb(page: Page, index: int) -> np.ndarray:
    """View ``index``'s canvas pixels, ``H×W×3`` uint8 (its drawing size, not the shown size)."""
    return png_pixels(sim_root(page).evaluate("(root, i) => root.__flView.views[i].canvas.toDataURL('image/png')",
                                              index))


def gray_photo(page: Page, image: int) -> np.ndarray:
    """The gray photo the element blends its heat maps over (decoded in the browser), ``H×W``."""
    return png_pixels(sim_root(page).evaluate("(root, i) => root.__flView.assets.photos[i].gray.toDataURL('image/png')",
                                        image))[..., 0]


def _point_on(page: Page, index: int, fx: float, fy: float) -> tuple[int, int, tuple[float, float]]:
    """Whole page pixels near the fraction ``(fx, fy)`` of view ``index``'s shown size (the
    browser delivers mouse events at whole pixels), and the normalised point they are."""
    canvas = canvases(page).nth(index)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, y = round(box["x"] + fx * box["width"]), round(box["y"] + fy * box["height"])
    return x, y, ((x - box["x"]) / box["width"], (y - box["y"]) / box["height"])


def hover(page: Page, index: int, fx: float, fy: float) -> tuple[float, float]:
    """Move the pointer to about the fraction ``(fx, fy)`` of view ``index``'s shown size;
    the normalised point the element should use."""
    x, y, xy = _point_on(page, index, fx, fy)
    page.mouse.move(x, y)
    return xy


def click_view(page: Page, index: int, fx: float, fy: float) -> tuple[float, float]:
    """Click view ``index`` at about the fraction ``(fx, fy)`` of its shown size, then move the
    pointer off the views (a hover would override the committed reference); the normalised
    point clicked."""
    x, y, xy = _point_on(page, index, fx, fy)
    page.mouse.click(x, y)
    page.mouse.move(1, 1)
    return xy


def query(page: Page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(page.url).query).items()}


def parse_xy(text: str) -> tuple[float, float]:
    x, y = (float(v) for v in text.split(","))
    return x, y


def wait_query(page: Page, key: str, predicate, what: str, timeout_ms: int = 15_000) -> dict[str, str]:
    """Wait until the URL's ``key`` satisfies ``predicate`` (the page writes the URL at the end
    of its run); the whole query."""
    for _ in range(timeout_ms // 100):
        q = query(page)
        if key in q and predicate(q[key]):
            return q
        page.wait_for_timeout(100)
    raise AssertionError(f"URL never got {what}: {page.url}")


def expected_cell(xy: tuple[float, float], grid_hw: tuple[int, int] | int) -> tuple[int, int]:
    gh, gw = (grid_hw, grid_hw) if isinstance(grid_hw, int) else grid_hw
    return min(math.floor(xy[1] * gh), gh - 1), min(math.floor(xy[0] * gw), gw - 1)


def ring_radius(view_hw: tuple[int, ...]) -> float:
    """The reference ring's radius in canvas pixels, as the element draws it."""
    return max(4.0, round(0.03 * min(view_hw[:2])))


def white_ring_centre(view: np.ndarray, min_pixels: int = 20) -> tuple[float, float] | None:
    """Centre ``(x, y)`` in canvas pixels of the white reference ring, or None if there is none.
    Over the gray photo at opacity 0.6 no magma colour reaches (230, 230, 230) in every channel."""
    ys, xs = np.nonzero((view >= 230).all(axis=-1))
    if len(xs) < min_pixels:
        return None
    return float(xs.min() + xs.max() + 1) / 2, float(ys.min() + ys.max() + 1) / 2


def assert_white_ring_at(view: np.ndarray, xy: tuple[float, float], what: str, tol_px: float = 1.5) -> None:
    h, w = view.shape[:2]
    centre = white_ring_centre(view)
    assert centre is not None, f"{what}: no white reference ring"
    assert abs(centre[0] - xy[0] * w) <= tol_px and abs(centre[1] - xy[1] * h) <= tol_px, \
        f"{what}: ring at {centre}, reference at {(xy[0] * w, xy[1] * h)}"
    assert_ring_colour(view, xy, WHITE, ring_radius(view.shape), what)


def ring_pixels(view: np.ndarray, xy: tuple[float, float], radius: float) -> np.ndarray:
    """The pixels whose centres lie within 0.5 px of the circle of ``radius`` around the
    normalised point ``xy``: where the 2-px coloured stroke of a ring is."""
    h, w = view.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    distance = np.hypot(xx + 0.5 - xy[0] * w, yy + 0.5 - xy[1] * h)
    return view[np.abs(distance - radius) <= 0.5].astype(float)


def assert_ring_colour(view: np.ndarray, xy: tuple[float, float], colour: tuple[int, int, int], radius: float,
                       what: str) -> None:
    """A ring of ``colour`` and ``radius`` is drawn around ``xy``: the pixels on its circle
    are that colour on average (the canvas anti-aliases the stroke's edges a little)."""
    pixels = ring_pixels(view, xy, radius)
    mean = pixels.mean(axis=0)
    assert len(pixels) >= 10 and np.abs(mean - colour).max() <= 30, \
        f"{what}: pixels on the ring of radius {radius} at {xy} average {mean.round()}, not {colour}"


def cell_heat(view: np.ndarray, gray: np.ndarray, grid_hw: tuple[int, int], keep_out: list[tuple[float, float]],
              opacity: float = 0.6, cmap: str = "magma") -> np.ndarray:
    """Invert the blend ``pixel = gray·(1 − α) + colormap(v)·α`` of a nearest-upsampled view:
    each cell's normalised value ``v`` in [0, 1] (median over its pixels, away from the rings
    around the points ``keep_out``), NaN where a cell has no such pixel."""
    h, w = gray.shape
    gh, gw = grid_hw
    assert view.shape[:2] == (h, w), (view.shape, gray.shape)
    heat = (view.astype(np.float32) - (1 - opacity) * gray[..., None]) / opacity
    lut = colormap_lut(cmap).astype(np.float32).reshape(-1, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    away = np.ones((h, w), bool)
    for x, y in keep_out:
        away &= np.hypot(xx + 0.5 - x * w, yy + 0.5 - y * h) > ring_radius(gray.shape) * PIN_RING_SCALE + 4
    rows, cols = (yy * gh) // h, (xx * gw) // w
    # skip the pixels next to cell borders: nearest-neighbour scaling may round them either way
    inner = (np.abs(yy + 0.5 - (rows + 0.5) * h / gh) < 0.5 * h / gh - 1.5) & \
            (np.abs(xx + 0.5 - (cols + 0.5) * w / gw) < 0.5 * w / gw - 1.5)
    cells = np.full((gh, gw), np.nan)
    for r in range(gh):
        for c in range(gw):
            sel = (rows == r) & (cols == c) & away & inner
            if sel.any():
                colour = np.median(heat[sel], axis=0)
                cells[r, c] = np.argmin(((lut - colour) ** 2).sum(-1)) / 255
    return cells


def assert_pixels_show_map(view: np.ndarray, gray: np.ndarray, map_hw: np.ndarray, value_range: tuple[float, float],
                           keep_out: list[tuple[float, float]], what: str, tol: float = 0.03) -> None:
    """The canvas shows ``map_hw`` through the colour scale ``value_range``: each cell's colour,
    inverted back to a value, matches the map's value there (within ~1 LUT step and rounding)."""
    lo, hi = value_range
    expected = np.clip((map_hw - lo) / (hi - lo), 0, 1)
    shown = cell_heat(view, gray, map_hw.shape, keep_out)
    ok = ~np.isnan(shown)
    assert ok.mean() > 0.8, f"{what}: only {ok.mean():.0%} of the cells could be read"
    error = np.abs(shown - expected)[ok]
    assert error.max() <= tol, f"{what}: drawn colours are off by up to {error.max():.3f} of the colour range"
