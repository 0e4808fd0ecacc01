"""Feature visualisation on the CPU: one facet of the bundled gallery at 224 px with
EfficientNet-Lite0, 200 iterations (the issue's target: under 60 s on the 2-core VM), with the
time per iteration and the share spent in the forward pass, the backward pass, the
regularisers (gradient mask, Gaussian blur, TV denoising) and the optimiser step.

The facet selection (pooled activations → PCA → t-SNE → k-means) is timed on its own; the
image is written to ``--out`` (default ``screenshots/bench_featureviz.png``: the result, its
starting blend and its nearest photos).

    python -m benchmarks.bench_featureviz [--layer stage5] [--steps 200] [--images all] [--out PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

import featurelens as fl
from featurelens.featureviz import TIMING_PARTS, FacetSettings, facet_figure, visualize_facets
from featurelens.images import bundled_gallery, get_gallery_image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="stage5")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=30)
    parser.add_argument("--images", default="all", help="comma-separated gallery ids, or 'all'")
    parser.add_argument("--out", default=str(ROOT / "screenshots" / "bench_featureviz.png"))
    args = parser.parse_args()

    ids = [g.id for g in bundled_gallery()] if args.images == "all" else args.images.split(",")
    model = fl.load_model("efficientnet_lite0")
    images = [get_gallery_image(i).load() for i in ids]
    settings = FacetSettings(layer=args.layer, n_facets=1, top_k=args.top_k, steps=args.steps)
    started = time.perf_counter()
    vis = visualize_facets(model, images, settings)
    wall = time.perf_counter() - started
    result = vis.facets[0]
    seconds = result.render.seconds
    loop = seconds["total"]
    print(f"device {model.device} · torch threads {torch.get_num_threads()} · {model.name} · {args.layer} · "
          f"{model.input_hw[1]}×{model.input_hw[0]} px · {len(ids)} images · 1 facet · top-{args.top_k} · "
          f"{args.steps} iterations\n")
    print("| part | total s | ms / iteration | share of the loop |")
    print("|---|---|---|---|")
    for part in TIMING_PARTS:
        print(f"| {part} | {seconds[part]:.2f} | {1000 * seconds[part] / args.steps:.1f} | {seconds[part] / loop:.0%} |")
    rest = loop - sum(seconds[p] for p in TIMING_PARTS)
    print(f"| other (progress, snapshots) | {rest:.2f} | {1000 * rest / args.steps:.1f} | {rest / loop:.0%} |")
    print(f"| **render loop** | **{loop:.2f}** | **{1000 * loop / args.steps:.1f}** | 100% |")
    print(f"\nwhole call (resize, facet selection, loop, closing measurement): {wall:.1f} s — "
          f"target < 60 s: {'met' if wall < 60 else 'NOT met'}")
    print(f"loss {result.render.losses[0]:.3f} → {result.render.losses[-1]:.3f}; mean activation of the top-{args.top_k} "
          f"channels: start {result.start_k.mean():.3f} → result {result.final_k.mean():.3f} "
          f"(target {result.target_k.mean():.3f})")
    print("facet:", ", ".join(f"{ids[m]} ({w:.2f})" for m, w in zip(result.facet.members, result.facet.weights)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(facet_figure(vis, f"{model.name} · {args.layer} · {args.steps} iterations", nearest_shown=4)).save(out)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
