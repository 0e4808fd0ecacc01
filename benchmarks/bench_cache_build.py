"""Cache-build throughput against a bare model forward pass, in the same run.

The cache build decodes each image, resizes and scales it, runs the model with hooks on the
cached layers, converts features to float16 and writes them, thumbnails and metadata to a
Zarr store on disk. The bare forward runs only ``model.module`` on already-preprocessed
batches of the same size. Target: build ≥ 0.8× the bare forward's images/s on CPU.

    python -m benchmarks.bench_cache_build [--images N] [--batch-size B]

Images: ImageNet samples from ../shared/data when present, else the bundled gallery repeated.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import featurelens as fl
from featurelens.caches import build_cache, open_cache
from featurelens.images import bundled_gallery, folder_images

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"


def _images(n: int):
    if SHARED.is_dir():
        return list(folder_images(SHARED))[:n], "ImageNet samples (shared/data)"
    gallery = list(bundled_gallery())
    return [gallery[i % len(gallery)] for i in range(n)], "bundled gallery (repeated)"


def _bare_forward_ips(model: fl.FeatureModel, images, batch_size: int) -> float:
    batches = [model.preprocess([im.load() for im in images[s:s + batch_size]])
               for s in range(0, len(images), batch_size)]
    with torch.inference_mode():
        model.module(batches[0])  # warm-up (preprocess already normalises)
        start = time.perf_counter()
        for batch in batches:
            model.module(batch)
        return len(images) / (time.perf_counter() - start)


def _build_ips(model: fl.FeatureModel, images, batch_size: int, layers) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_cache(Path(tmp) / "bench.zarr", images, model, layers, dataset_name="bench", batch_size=batch_size)
        seconds = time.perf_counter() - start
        cache = open_cache(Path(tmp) / "bench.zarr", model=model)
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
        return len(images) / seconds, f"{cache.n_images} images, {size_mb:.1f} MiB on disk"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = fl.load_model(args.model)
    images, source = _images(args.images)
    layers = list(model.spec.default_layers)
    _bare_forward_ips(model, images[: args.batch_size], args.batch_size)  # warm caches and threads
    bares, builds = [], []
    for _ in range(args.rounds):  # interleaved rounds: a noisy neighbour slows both alike
        bares.append(_bare_forward_ips(model, images, args.batch_size))
        build, detail = _build_ips(model, images, args.batch_size, layers)
        builds.append(build)
    ratios = [b / a for a, b in zip(bares, builds)]
    print(f"Cache build vs bare forward: {model.name} on {model.device} ({torch.get_num_threads()} threads), "
          f"{len(images)} {source}, batch {args.batch_size}, layers {','.join(layers)}, {args.rounds} rounds")
    print(f"{'run':34s} {'images/s (median)':>18s} {'best':>7s} {'× bare (median)':>16s}")
    print(f"{'bare forward (preprocessed)':34s} {np.median(bares):18.1f} {max(bares):7.1f} {1.0:16.2f}")
    print(f"{'cache build (decode→zarr on disk)':34s} {np.median(builds):18.1f} {max(builds):7.1f} "
          f"{np.median(ratios):16.2f}   ({detail})")
    print(f"per-round ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
    verdict = "met" if np.median(ratios) >= 0.8 else "NOT met"
    print(f"target: cache build ≥ 0.80× bare forward (median of rounds) → {verdict}")


if __name__ == "__main__":
    main()
