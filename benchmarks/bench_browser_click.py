"""End-to-end latency of a click on the Layer hierarchy page, measured in a real browser:
from the click on one view until all 4 views have loaded their new overlay images.

Starts the app on a free port (the browser tests' ``streamlit_server``), opens
``/layer_hierarchy`` in headless Chromium (4 layers, views about 224 px wide), clicks
``--clicks`` different points (cycling over the views) and times each click → update in
the page itself: a capture-phase ``click`` listener stamps the click, ``load`` listeners on
the 4 view ``<img>`` elements stamp each new image, both on
the same clock (``performance.timeOrigin + performance.now()``). The views are
``pages/_ui/clickable_image.py`` elements: ``<img class="fl-click-image">`` in shadow roots. The baseline, measured the
same way in the same run, is a trivial widget rerun that also redraws all 4 views: toggling
the "Photo" radio between Gray and Color.

    python -m benchmarks.bench_browser_click [--clicks 20]

Needs /usr/bin/chromium (never ``playwright install``). Timings only, no assertions.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_P95_MS = 400.0
VIEWS = '[data-testid="stMain"] img.fl-click-image'  # Playwright's CSS locators enter shadow roots
# The same views from page JavaScript (document.querySelectorAll does not enter shadow roots).
_VIEW_IMGS_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')]
    .map(host => host.shadowRoot && host.shadowRoot.querySelector('img.fl-click-image')).filter(Boolean)"""


def browser_helpers():
    """The browser tests' conftest (server start, idle wait), loaded under its own name."""
    path = ROOT / "tests" / "browser" / "conftest.py"
    spec = importlib.util.spec_from_file_location("featurelens_browser_conftest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the conftest registers itself as ``browser_helpers``
    spec.loader.exec_module(module)
    return module


# Arms the probes for one measurement: remembers every view's current src, stamps the next
# click (anywhere in the page, capture phase) and each view's first load of a different
# image; window.__flProbe.done is set once all views have a new image.
_ARM_JS = """() => {
    const now = () => performance.timeOrigin + performance.now();
    const imgs = (VIEW_IMGS)();
    const state = {click: null, loaded: imgs.map(() => null), done: null, n: imgs.length};
    window.__flProbe = state;
    const onClick = () => { if (state.click === null) state.click = now(); };
    if (!window.__flClickHooked) {
        window.__flClickHooked = true;
        document.addEventListener('click', () => window.__flProbe && window.__flProbe.onClick(), true);
    }
    state.onClick = onClick;
    imgs.forEach((img, i) => {
        const before = img.src;
        const onLoad = () => {
            if (window.__flProbe !== state || state.loaded[i] !== null || img.src === before) return;
            state.loaded[i] = now();
            if (state.loaded.every(t => t !== null)) state.done = Math.max(...state.loaded);
        };
        img.addEventListener('load', onLoad);
    });
    return imgs.length;
}""".replace("VIEW_IMGS", _VIEW_IMGS_JS)


def _measure(page, act, timeout_ms: float = 30_000) -> float:
    """Milliseconds from the click that ``act()`` performs to the last view's new image."""
    n = page.evaluate(_ARM_JS)
    assert n == 4, f"expected 4 views, found {n}"
    act()
    page.wait_for_function("() => window.__flProbe.done !== null && window.__flProbe.click !== null",
                           timeout=timeout_ms)
    probe = page.evaluate("() => ({click: window.__flProbe.click, done: window.__flProbe.done})")
    return probe["done"] - probe["click"]


def _row(name: str, times_ms: list[float]) -> tuple[str, int, float, float, float]:
    arr = np.asarray(times_ms)
    return name, len(arr), float(np.percentile(arr, 50)), float(np.percentile(arr, 95)), float(arr.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20, help="clicks (and baseline toggles) to time")
    parser.add_argument("--warmup", type=int, default=2, help="untimed clicks and toggles first")
    args = parser.parse_args()
    helpers = browser_helpers()
    if not helpers.CHROMIUM.exists():
        sys.exit(f"needs Chromium at {helpers.CHROMIUM} (apt-get install chromium); never `playwright install`")

    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    with helpers.streamlit_server() as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(helpers.CHROMIUM), headless=True,
                                             args=helpers.CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            start = time.monotonic()
            page.goto(f"{base_url}/")
            helpers.wait_for_app(page)
            page.goto(f"{base_url}/layer_hierarchy")
            helpers.wait_for_app(page)
            helpers.assert_no_exception(page)
            load_s = time.monotonic() - start
            views = page.locator(VIEWS)
            imgs = [views.nth(i) for i in range(views.count())]
            sizes = [img.evaluate("i => [i.width, i.height, i.naturalWidth, i.naturalHeight]") for img in imgs]

            def click_view(i: int) -> None:
                width, height = sizes[i % 4][:2]
                fx, fy = rng.uniform(0.05, 0.95, 2)
                imgs[i % 4].click(position={"x": round(fx * width), "y": round(fy * height)})

            photo = page.locator('[data-testid="stMain"] [data-testid="stRadio"]').filter(has_text="Photo")
            toggles = iter(["Color", "Gray"] * (args.clicks + args.warmup))

            def toggle_photo(_: int) -> None:
                photo.get_by_text(next(toggles), exact=True).click()

            results = {}
            for name, act in (("click a view → 4 overlays updated", click_view),
                              ("baseline: Photo Gray↔Color → 4 overlays", toggle_photo)):
                times = []
                for i in range(args.warmup + args.clicks):
                    ms = _measure(page, lambda: act(i))
                    helpers.wait_for_app(page, quiet_ms=300)
                    if i >= args.warmup:
                        times.append(ms)
                results[name] = times
            helpers.assert_no_exception(page)
        finally:
            browser.close()

    rows = [_row(name, times) for name, times in results.items()]
    click, baseline = rows
    print(f"Layer hierarchy, 4 views {'/'.join(f'{w}×{h}' for w, h, _, _ in sizes)} px shown "
          f"({sizes[0][2]}×{sizes[0][3]} px images), headless Chromium, server on this machine; "
          f"page ready in {load_s:.1f} s; {args.warmup} warm-up + {args.clicks} timed each")
    print(f"{'measurement':44s} {'n':>3s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for name, n, p50, p95, worst in rows:
        print(f"{name:44s} {n:3d} {p50:8.0f} {p95:8.0f} {worst:8.0f}")
    verdict = "met" if click[3] < TARGET_P95_MS else "MISSED"
    print(f"target: click p95 < {TARGET_P95_MS:.0f} ms: {verdict} ({click[3]:.0f} ms, "
          f"{click[3] / TARGET_P95_MS:.2f}× the target)")
    print(f"click ÷ baseline (same run): p50 {click[2] / baseline[2]:.2f}×, p95 {click[3] / baseline[3]:.2f}×")


if __name__ == "__main__":
    main()
