"""Server-side cost of one click on the Layer hierarchy page: recompute and render the
similarity overlays of 4 layers of a 224-px image, and encode them as the page sends them.

Prints a table with medians over many clicks at random points, and ratios measured in the
same run: against the 20 ms target and against one model forward pass (which a click
never repeats: features are computed once per image).

    python -m benchmarks.bench_overlay_click [--clicks 200]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import torch
from PIL import Image
from skimage import data

import featurelens as fl
from featurelens.models import analyse_image
from featurelens.similarity import OverlaySettings, layer_views, upsample_map

LAYERS = ("stage2", "stage3", "stage5", "stage7")
TARGET_MS = 20.0


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = fl.load_model("efficientnet_lite0", device="cpu")
    photo = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.BICUBIC))
    report = analyse_image(model, photo)
    feats = {layer: report.feats_hwc[layer] for layer in LAYERS}
    rng = np.random.default_rng(0)
    points = iter(rng.random((10 * args.clicks, 2)))

    def click(settings=OverlaySettings()):
        return layer_views(feats, report.display_hwc_u8, tuple(next(points)), settings)

    def click_and_encode():
        for view in click().values():
            Image.fromarray(view.image_hwc_u8).save(io.BytesIO(), format="JPEG", quality=90)

    batch = model.preprocess([photo])
    forward_ms = _median_ms(lambda: model.run(batch, list(LAYERS)), 20)
    rows = [
        ("compute + render, cosine, nearest", _median_ms(click, args.clicks)),
        ("compute + render, angular, bilinear", _median_ms(lambda: click(OverlaySettings(metric="angular", upsample="bilinear")), args.clicks)),
        ("compute + render + JPEG encode (as sent)", _median_ms(click_and_encode, args.clicks)),
    ]
    print(f"Overlay click, {len(LAYERS)} layers {', '.join(LAYERS)}, 224 px image, 1 CPU thread, "
          f"median of {args.clicks} clicks")
    print(f"{'step':44s} {'ms':>8s} {'÷ target 20 ms':>15s} {'÷ model forward':>16s}")
    for name, ms in rows:
        print(f"{name:44s} {ms:8.2f} {ms / TARGET_MS:15.2f} {ms / forward_ms:16.3f}")
    print(f"{'(one model forward, for reference)':44s} {forward_ms:8.2f} {forward_ms / TARGET_MS:15.2f} {1:16.3f}")
    _upsampling_table(args.clicks)


def _upsampling_table(repeats: int) -> None:
    """Why the bilinear upsampling stays numpy: equal to ``F.interpolate`` and not slower on
    the 4 maps of one click (each 7–56 cells a side → 224 px)."""
    rng = np.random.default_rng(1)
    maps = [rng.random((g, g)).astype(np.float32) for g in (56, 28, 14, 7)]

    def numpy_taps():
        return [upsample_map(m, (224, 224), "bilinear") for m in maps]

    def torch_interpolate():
        return [torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=(224, 224), mode="bilinear",
                                                align_corners=False)[0, 0].numpy() for m in maps]

    worst = max(float(np.abs(a - b).max()) for a, b in zip(numpy_taps(), torch_interpolate()))
    numpy_ms, torch_ms = _median_ms(numpy_taps, repeats), _median_ms(torch_interpolate, repeats)
    print(f"\nBilinear upsampling of one click's 4 maps to 224 px (max |difference| {worst:.1e})")
    print(f"{'numpy taps (kept)':44s} {numpy_ms:8.3f} ms")
    print(f"{'torch.nn.functional.interpolate':44s} {torch_ms:8.3f} ms   numpy ÷ torch {numpy_ms / torch_ms:.2f}")


if __name__ == "__main__":
    main()
