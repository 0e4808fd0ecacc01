"""Few-shot segmentation with frozen EfficientNet-Lite0 features: mIoU of every method and
layer (and fused layers) on 1-shot episodes, with two baselines, and the time per query on CPU.

- CamVid (``../shared/data/camvid``, 101 frames of one street sequence, 11 classes): for every
  class, ``--episodes`` (support, query) pairs of different frames drawn with a fixed seed among
  the frames where the class covers at least 1 % of the image; the support's ground-truth mask
  of that class is the support mask. IoU per episode, mean per class, mIoU = mean over classes.
- FSS-1000 examples (``../shared/data/fss1000-examples``, the Eiffel tower): its 5 support
  images have masks (the queries have none), so every ordered pair of them is an episode (20).

Baselines: *whole image* (every pixel foreground) and *support mask copied* (the support's mask
pasted on the query unchanged: a constant that ignores the query's content, which in a street
sequence filmed from one car is a strong prior). Masks are thresholded with Otsu (and, for
foreground-vs-background, also at its natural threshold 0). For scale: training-free methods
built on DINOv2 + SAM report 71–88 mIoU on the full FSS-1000 (PerSAM 71.2, Matcher 87.0).

    python -m benchmarks.bench_fewshot [--episodes 8] [--seed 0] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import featurelens as fl
from featurelens.segmentation import (class_names, find_masked_images, iou, list_methods, read_mask, segment,
                                      get_method)

LAYER_SETS = (("stage3",), ("stage4",), ("stage5",), ("stage6",), ("stage7",), ("stage5", "stage7"),
              ("stage3", "stage5", "stage7"))
MIN_SHARE = 0.01
IGNORE_CAMVID = 11   # Unlabelled


def _features(model, images: list[np.ndarray], layers: list[str]) -> list[dict[str, np.ndarray]]:
    feats = model.features(images, layers, batch_size=8)
    return [{l: feats[l][i] for l in layers} for i in range(len(images))]


def _camvid_episodes(masks: list[np.ndarray], n: int, seed: int) -> dict[int, list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    episodes = {}
    for c in range(IGNORE_CAMVID):
        frames = [i for i, m in enumerate(masks) if (m == c).mean() >= MIN_SHARE]
        if len(frames) < 2:
            continue
        pairs = []
        for _ in range(n):
            s, q = rng.choice(frames, size=2, replace=False)
            pairs.append((int(s), int(q)))
        episodes[c] = pairs
    return episodes


def _configs() -> list[tuple[str, str, tuple[str, ...], str]]:
    rows = []
    for method in list_methods():
        thresholds = ["otsu"] + (["natural"] if get_method(method).natural_threshold is not None else [])
        for layers in LAYER_SETS:
            for t in thresholds:
                rows.append((f"{method} / {'+'.join(layers)} / {t}", method, layers, t))
    return rows


def _evaluate(feats, truths, episodes, configs) -> dict[str, list[float]]:
    """``{config or baseline: [IoU per class (mean over its episodes)]}``."""
    scores: dict[str, dict[int, list[float]]] = {}
    for c, pairs in episodes.items():
        for s, q in pairs:
            support_hw, truth_hw = truths[s][c], truths[q][c]
            for name, method, layers, t in configs:
                result = segment(feats[s], support_hw, feats[q], method=method, layers=layers, threshold=t,
                                 out_hw=truth_hw.shape)
                scores.setdefault(name, {}).setdefault(c, []).append(iou(result.mask_hw, truth_hw))
            scores.setdefault("baseline: whole image", {}).setdefault(c, []).append(
                iou(np.ones_like(truth_hw), truth_hw))
            scores.setdefault("baseline: support mask copied", {}).setdefault(c, []).append(
                iou(support_hw if support_hw.shape == truth_hw.shape else
                    np.asarray(Image.fromarray(support_hw).resize(truth_hw.shape[::-1])), truth_hw))
    return {name: [float(np.mean(v)) for v in per_class.values()] for name, per_class in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--episodes", type=int, default=8, help="CamVid episodes per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = fl.load_model("efficientnet_lite0", device="cpu")
    layers = sorted({l for s in LAYER_SETS for l in s})
    configs = _configs()

    camvid = find_masked_images(args.data / "camvid")
    names = class_names(args.data / "camvid")
    images = [np.asarray(p.load_image()) for p in camvid]
    labels = [np.asarray(Image.open(p.mask_path)) for p in camvid]
    t0 = time.perf_counter()
    cam_feats = _features(model, images, layers)
    cam_forward = (time.perf_counter() - t0) / len(images)
    cam_truths = [{c: lab == c for c in range(IGNORE_CAMVID)} for lab in labels]
    cam_episodes = _camvid_episodes(labels, args.episodes, args.seed)
    t0 = time.perf_counter()
    cam = _evaluate(cam_feats, cam_truths, cam_episodes, configs)
    n_cam = sum(len(v) for v in cam_episodes.values())
    seg_time = (time.perf_counter() - t0) / (n_cam * len(configs))

    fss = find_masked_images(args.data / "fss1000-examples")
    fss_images = [np.asarray(p.load_image()) for p in fss]
    fss_feats = _features(model, fss_images, layers)
    fss_truths = [{0: read_mask(p.mask_path)} for p in fss]
    fss_episodes = {0: [(s, q) for s in range(len(fss)) for q in range(len(fss)) if s != q]}
    fss_scores = _evaluate(fss_feats, fss_truths, fss_episodes, configs)

    single = np.asarray(images[0])
    model.features([single], layers)   # warm-up
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        model.features([single], layers)
        times.append(time.perf_counter() - t0)
    forward_1 = float(np.median(times))

    print(f"CamVid: {len(camvid)} frames, {len(cam_episodes)} classes "
          f"({', '.join(names[c] for c in cam_episodes)}), {args.episodes} episodes per class (seed {args.seed}); "
          f"FSS-1000 examples: {len(fss)} masked images, {len(fss_episodes[0])} episodes")
    print(f"\n| method / layers / threshold | CamVid mIoU | FSS-1000 ex. mIoU |\n|---|---:|---:|")
    order = [name for name, *_ in configs] + ["baseline: whole image", "baseline: support mask copied"]
    for name in order:
        print(f"| {name} | {100 * np.mean(cam[name]):.1f} | {100 * np.mean(fss_scores[name]):.1f} |")
    best_cam = max((n for n, *_ in configs), key=lambda n: np.mean(cam[n]))
    best_fss = max((n for n, *_ in configs), key=lambda n: np.mean(fss_scores[n]))
    print(f"\nbest on CamVid: {best_cam} ({100 * np.mean(cam[best_cam]):.1f}); "
          f"best on FSS-1000 examples: {best_fss} ({100 * np.mean(fss_scores[best_fss]):.1f})")
    rows = (best_cam, "baseline: support mask copied", "baseline: whole image")
    print(f"\nCamVid IoU per class\n| class | {' | '.join(rows)} |\n|---|" + "---:|" * len(rows))
    for i, c in enumerate(cam_episodes):
        print(f"| {names[c]} | " + " | ".join(f"{100 * cam[r][i]:.0f}" for r in rows) + " |")
    print(f"\ntime per query on CPU ({torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}): model forward {1000 * forward_1:.0f} ms (median of 7) for one 480×360 image "
          f"(batched over the 101 frames: {1000 * cam_forward:.0f} ms each); segmentation {1000 * seg_time:.1f} ms "
          "per query and configuration at 480×360 (scores, upsampling, threshold, IoU)")


if __name__ == "__main__":
    main()
