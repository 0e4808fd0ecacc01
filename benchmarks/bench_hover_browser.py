"""Hover latency of the in-browser similarity views (``pages/_ui/similarity_view.py``), measured
in headless Chromium with timings taken inside the page.

Two view sets, as issue 10 asks: Layer hierarchy with 4 layers of one photo, and Compare
images with 8 photos × 1 layer. For each, the pointer moves ``--moves`` times over the views
(a random walk, hopping between views); the element records, per move, the time from the
pointer event's timestamp until every view is redrawn (``timings``), and the redraw alone
(``work``). Also measured in the same run:

- WebSocket messages the page sends to the server during the moves (the target is 0);
- bytes per image/layer set: the packed payload (photos as JPEG + 8-bit features + state),
  and the WebSocket bytes received while the page loads;
- page load → first interactive view (navigation start to the first complete draw);
- a click → the server's rerun → the views drawn again from its reply (the commit round trip),
  the old way every update went, for the ratio.

    python -m benchmarks.bench_hover_browser [--moves 300]

Needs /usr/bin/chromium (never ``playwright install``). Timings only, no assertions.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from benchmarks.browser import browser_helpers

TARGET_P95_MS = 16.0
GALLERY_8 = "chelsea,coffee,astronaut,rocket,camera,coins,clock,hubble"
SETS = {
    "4 layers × 1 photo (Layer hierarchy)": "/layer_hierarchy?images=chelsea&layers=stage2,stage3,stage5,stage7",
    "8 photos × 1 layer (Compare images)": f"/compare_images?images={GALLERY_8}&layers=stage5&mode=all",
}

# Counts what the page sends to and receives from the server, from before the app's own script runs.
_SOCKET_PROBE = """(() => {
    window.__flSocket = {sent: 0, received: 0, receivedBytes: 0};
    const Native = window.WebSocket;
    window.WebSocket = function (...args) {
        const socket = new Native(...args);
        socket.addEventListener('message', (event) => {
            window.__flSocket.received += 1;
            const data = event.data;
            window.__flSocket.receivedBytes += data.byteLength ?? data.size ?? data.length ?? 0;
        });
        return socket;
    };
    window.WebSocket.prototype = Native.prototype;
    Object.assign(window.WebSocket, Native);
    const send = Native.prototype.send;
    Native.prototype.send = function (...args) { window.__flSocket.sent += 1; return send.apply(this, args); };
})();"""

_VIEW_STATE = """() => {
    for (const host of document.querySelectorAll('[data-testid="stMain"] [data-testid="stBidiComponentIsolated"]')) {
        const root = host.shadowRoot && host.shadowRoot.querySelector('.fl-sim-root');
        if (root && root.__flView.assets) {
            const s = root.__flView;
            return {views: s.views.length, draws: s.draws, timings: s.timings.slice(), work: s.work.slice(), queued: s.queued.slice(),
                    firstDrawAt: s.firstDrawAt, dataCount: s.dataCount, dataDrawnAt: s.dataDrawnAt,
                    sizes: s.views.map((v) => [v.canvas.width, v.canvas.height])};
        }
    }
    return null;
}"""


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95)), float(arr.max())


def _payload_bytes(path: str) -> int:
    """The packed payload Python sends for this view set (photos, 8-bit features, state)."""
    from featurelens.images import get_gallery_image
    from featurelens.models import analyse_image, load_model
    from featurelens.similarity import OverlaySettings, hover_assets, hover_state, pack_hover

    model = load_model("efficientnet_lite0.in1k")
    query = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
    images, layers = query["images"].split(","), query["layers"].split(",")
    reports = [analyse_image(model, get_gallery_image(i).load()) for i in images]
    assets = hover_assets([r.display_hwc_u8 for r in reports], [{l: r.feats_hwc[l] for l in layers} for r in reports])
    views = [(0, l, l) for l in layers] if len(images) == 1 else [(i, layers[0], n) for i, n in enumerate(images)]
    state = hover_state(assets, views, OverlaySettings(), mode="layers" if len(images) == 1 else "images",
                        ref=(0, (0.5, 0.5)))
    return len(pack_hover(assets, state))


def _measure_set(page, helpers, base_url: str, path: str, moves: int, rng) -> dict:
    page.goto(base_url + path)
    page.wait_for_function(f"() => ({_VIEW_STATE})() !== null", timeout=120_000)
    helpers.wait_for_app(page)
    helpers.assert_no_exception(page)
    loaded = page.evaluate(_VIEW_STATE)
    received_bytes = page.evaluate("() => window.__flSocket.receivedBytes")
    canvases = page.locator('[data-testid="stMain"] canvas.fl-sim-canvas')
    canvases.last.scroll_into_view_if_needed()
    boxes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
    if any(b["y"] < 0 or b["y"] + b["height"] > 2000 for b in boxes):
        raise SystemExit(f"views do not all fit on the screen: {boxes}")
    before = page.evaluate(_VIEW_STATE)
    sent_before = page.evaluate("() => window.__flSocket.sent")
    view, fx, fy = 0, 0.5, 0.5
    for step in range(moves):
        if step % 50 == 49:
            view = int(rng.integers(len(boxes)))
        fx = float(np.clip(fx + rng.normal(0, 0.05), 0.02, 0.98))
        fy = float(np.clip(fy + rng.normal(0, 0.05), 0.02, 0.98))
        box = boxes[view]
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.wait_for_timeout(300)
    after = page.evaluate(_VIEW_STATE)
    sent_during = page.evaluate("() => window.__flSocket.sent") - sent_before
    new = len(after["timings"]) - len(before["timings"])
    # the commit round trip: a click → the server reruns the views' fragment → new data drawn
    trips = []
    for _ in range(10):
        count = page.evaluate(_VIEW_STATE)["dataCount"]
        box = boxes[int(rng.integers(len(boxes)))]
        page.evaluate("() => { window.__flClickAt = performance.now(); }")
        page.mouse.click(box["x"] + rng.uniform(0.1, 0.9) * box["width"], box["y"] + rng.uniform(0.1, 0.9) * box["height"])
        page.wait_for_function(f"() => {{ const s = ({_VIEW_STATE})(); return s.dataCount > {count} && s.dataDrawnAt > window.__flClickAt; }}",
                               timeout=60_000)
        trips.append(page.evaluate(f"() => ({_VIEW_STATE})().dataDrawnAt - window.__flClickAt"))
        helpers.wait_for_app(page, quiet_ms=200)
    helpers.assert_no_exception(page)
    return {"views": after["views"], "sizes": after["sizes"], "timings": after["timings"][-new:],
            "work": after["work"][-new:], "queued": after["queued"][-new:], "first_draw_ms": loaded["firstDrawAt"], "sent": sent_during,
            "received_bytes": received_bytes, "payload": _payload_bytes(path), "trips": trips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=300, help="pointer moves per view set")
    args = parser.parse_args()
    helpers = browser_helpers()
    if not helpers.CHROMIUM.exists():
        sys.exit(f"needs Chromium at {helpers.CHROMIUM} (apt-get install chromium); never `playwright install`")
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    results = {}
    with helpers.streamlit_server() as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(helpers.CHROMIUM), headless=True,
                                             args=helpers.CHROMIUM_ARGS)
        try:
            for name, path in SETS.items():
                context = browser.new_context(viewport={"width": 1400, "height": 2000})  # every view on screen
                context.add_init_script(_SOCKET_PROBE)
                page = context.new_page()
                page.goto(base_url + "/")  # the first visit loads the model; time a warm page
                helpers.wait_for_app(page)
                results[name] = _measure_set(page, helpers, base_url, path, args.moves, rng)
                context.close()
        finally:
            browser.close()

    print(f"Hover in headless Chromium (software rendering, --disable-gpu), {args.moves} pointer moves per set, "
          "this machine; timings from inside the page")
    print(f"{'view set':38s} {'views':>5s} {'move→drawn p50/p95/max ms':>26s} {'redraw p50/p95 ms':>18s} "
          f"{'msgs/hover':>10s} {'payload KB':>10s} {'page KB':>8s} {'load→view s':>11s} {'click trip p50/p95 ms':>22s}")
    for name, r in results.items():
        p50, p95, worst = _percentiles(r["timings"])
        w50, w95, _ = _percentiles(r["work"])
        t50, t95, _ = _percentiles(r["trips"])
        print(f"{name:38s} {r['views']:5d} {p50:8.1f} /{p95:6.1f} /{worst:6.1f}    {w50:7.1f} /{w95:6.1f}   "
              f"{r['sent'] / max(len(r['timings']), 1):10.2f} {r['payload'] / 1e3:10.0f} {r['received_bytes'] / 1e3:8.0f} "
              f"{r['first_draw_ms'] / 1e3:11.1f} {t50:10.0f} /{t95:6.0f}")
        q50, q95, _ = _percentiles(r["queued"])
        print(f"    of which the browser's input queue (event → handler): p50 {q50:.1f} / p95 {q95:.1f} ms")
        print(f"    view sizes (px): {', '.join(f'{w}×{h}' for w, h in r['sizes'])}; "
              f"hover p95 ÷ click round trip p50 (same run): {p95 / t50:.3f}")
    for name, r in results.items():
        p95 = _percentiles(r["timings"])[1]
        print(f"target p95 < {TARGET_P95_MS:.0f} ms, 0 server messages per hover — {name}: "
              f"{'met' if p95 < TARGET_P95_MS and r['sent'] == 0 else 'MISSED'} ({p95:.1f} ms, {r['sent']} messages)")


if __name__ == "__main__":
    main()
