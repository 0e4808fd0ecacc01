"""End-to-end latency of a region search in a real browser: from the mouse-up that ends a stroke
on the Domain shift page's canvas until the new top-10 thumbnails are loaded.

Starts the app on a free port (the browser tests' ``streamlit_server``), opens ``/domain_shift``
(the offline generated cache, 420 images; built first if missing), draws ``--draws`` strokes on
different regions of different query photos' canvases and times each draw → results shown.
The baseline, measured the same way in the same run, is a trivial rerun that redraws the same
results grid: switching "At most one result per" between its options.

    python -m benchmarks.bench_search_browser [--draws 20]

Needs /usr/bin/chromium (never ``playwright install``). Timings only, no assertions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.browser import browser_helpers

TARGET_P95_MS = 1000.0

# The result captions and whether every result image has loaded.
_RESULTS_JS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const captions = [...main.querySelectorAll('[data-testid="stImageCaption"]')]
        .map(c => c.innerText).filter(t => t.startsWith('#'));
    const images = [...main.querySelectorAll('[data-testid="stImage"] img')];
    return {captions: captions.join('|'), loaded: images.every(i => i.complete && i.naturalWidth > 0)};
}"""


def _wait_changed(page, before: str, timeout_s: float = 60.0) -> float:
    """Seconds until the result captions differ from ``before`` and every image has loaded."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        state = page.evaluate(_RESULTS_JS)
        if state["captions"] and state["captions"] != before and state["loaded"]:
            return time.perf_counter() - start
        page.wait_for_timeout(10)
    raise TimeoutError("the results did not change")


def _stroke(page, fx: float, fy: float) -> str:
    """Draw a short zig-zag at canvas fractions ``(fx, fy)``; returns the captions before it."""
    canvas = page.locator('[data-testid="stMain"] canvas.upper-canvas').first
    box = canvas.bounding_box()
    before = page.evaluate(_RESULTS_JS)["captions"]
    x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(6):
        page.mouse.move(x + (30 if i % 2 == 0 else 0), y + 6 * i, steps=3)
    page.mouse.up()
    return before


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    helpers = browser_helpers()
    from playwright.sync_api import sync_playwright

    photos = ["chelsea", "coffee", "astronaut", "rocket"]
    with helpers.streamlit_server() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(helpers.CHROMIUM), args=helpers.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/domain_shift")
        helpers.wait_for_app(page, timeout_ms=600_000)
        rng = np.random.default_rng(0)
        draws, reruns = [], []
        for i in range(args.draws):
            if i % 5 == 0:   # a fresh canvas now and then: a new query photo
                page.get_by_label("Query photo").click()
                page.get_by_role("option", name=photos[(i // 5) % len(photos)], exact=True).click()
                helpers.wait_for_app(page)
            before = _stroke(page, *rng.uniform(0.15, 0.7, size=2))
            draws.append(_wait_changed(page, before) * 1000)
            helpers.wait_for_app(page)
            option = ["domain", "no limit"][i % 2]
            before = page.evaluate(_RESULTS_JS)["captions"]
            page.get_by_role("button", name="Results").click()   # the radio sits in the Results popover
            page.get_by_text(option, exact=True).click()
            reruns.append(_wait_changed(page, before) * 1000)
            helpers.wait_for_app(page)
            page.keyboard.press("Escape")   # close the popover before the next stroke
        browser.close()
    print(f"Domain shift page in Chromium, offline generated cache, {args.draws} draws")
    print(f"{'step':52s} {'p50 ms':>8s} {'p95 ms':>8s} {'p95 ÷ target':>13s}")
    for name, ms in (("draw → new top-10 shown", draws), ("baseline: rerun redrawing the results (radio)", reruns)):
        p50, p95 = _percentiles(ms)
        print(f"{name:52s} {p50:8.0f} {p95:8.0f} {p95 / TARGET_P95_MS:13.2f}")
    print(f"draw ÷ baseline (p50): {_percentiles(draws)[0] / _percentiles(reruns)[0]:.2f}")


if __name__ == "__main__":
    main()
