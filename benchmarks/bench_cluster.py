"""Cache build and region search on a Dask cluster against the single process, in the same run,
and the plan it implies for ImageNet-scale caches.

Builds (once, kept in ``--cache``) a real cache of EfficientNet-Lite0's ``head`` layer
(7×7×1280 float16, 125 KB per image) for ``--images`` images (the bundled gallery repeated
under distinct ids), then times the same 2×2-box query: single process (streaming from Zarr),
a LocalCluster with 1 worker process and with 2 (one thread each). Prints the times, the ratios,
the scanned GB/s per worker, and how many such workers a 1-second query needs at 100 k, 1 M
and 10 M images. The build part builds ``--build-images`` images (stage5 + stage7) in one process,
on 1 worker and on 2 workers.

    python -m benchmarks.bench_cluster [--images 2000] [--repeats 3] [--build-images 96]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from featurelens.caches import build_cache, open_cache
from featurelens.cluster import search_on_cluster
from featurelens.images import bundled_gallery
from featurelens.search import box_mask, query_from_features, search

LAYER = "head"
BYTES_PER_IMAGE = 7 * 7 * 1280 * 2


def _cache(path: Path, n: int):
    gallery = bundled_gallery()
    images = [dataclasses.replace(gallery[i % len(gallery)], id=f"{gallery[i % len(gallery)].id}-{i}") for i in range(n)]
    if not (path / "zarr.json").exists():
        print(f"building {n} images into {path} (once)…", flush=True)
    return build_cache(path, images, "efficientnet_lite0", [LAYER], dataset_name="bench", batch_size=32)


def _build_table(n: int) -> None:
    """Seconds to build the same cache in one process, on 1 worker and on 2 workers."""
    from distributed import Client, LocalCluster

    gallery = bundled_gallery()
    images = [dataclasses.replace(gallery[i % len(gallery)], id=f"b{i}") for i in range(n)]
    rows = []
    for workers in (None, 1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            cluster = None if workers is None else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                                 processes=True, dashboard_address=None)
            client = None if cluster is None else Client(cluster)
            start = time.perf_counter()
            build_cache(Path(tmp) / "b.zarr", images, "efficientnet_lite0", ["stage5", "stage7"], dataset_name="b",
                        chunk_images=8, client=client)
            rows.append(("single process" if workers is None else f"Dask LocalCluster, {workers} worker(s)",
                         time.perf_counter() - start))
            if client is not None:
                client.close()
                cluster.close()
    print(f"\nCache build, {n} images, stage5 + stage7, chunks of 8 (includes starting the cluster)")
    print(f"{'run':44s} {'s':>7s} {'÷ single':>9s} {'img/s':>6s}")
    for name, seconds in rows:
        print(f"{name:44s} {seconds:7.1f} {seconds / rows[0][1]:9.2f} {n / seconds:6.1f}")
    print(f"2 workers ÷ 1 worker: {rows[2][1] / rows[1][1]:.2f}")


def _median_s(fn, repeats: int) -> float:
    fn()  # warm: imports on workers, page cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build-images", type=int, default=96)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "featurelens-bench-cluster.zarr"))
    parser.add_argument("--usd-per-worker-hour", type=float, default=0.05,
                        help="price of one CPU worker (one vCPU) for an hour; an assumption, not measured "
                             "(default 0.05, on-demand cloud compute in 2026)")
    parser.add_argument("--gpu-gbps", type=float, help="a GPU's measured in-memory scan rate "
                        "(benchmarks/bench_search_gpu.py), for a GPU row in the plan")
    parser.add_argument("--usd-per-gpu-hour", type=float, default=3.0, help="price of one GPU for an hour (assumed)")
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="cache a GPU can hold (assumed)")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    _build_table(args.build_images)
    _cache(Path(args.cache), args.images)
    cache = open_cache(args.cache)
    feats_hwc = np.asarray(cache.features(LAYER)[0], np.float32)
    query = query_from_features(feats_hwc, box_mask((0.3, 0.2, 0.6, 0.5), (7, 7)), model=cache.model_name,
                                layer=LAYER, image_index=0)
    rows = [("single process (zarr streaming)", _median_s(lambda: search(cache, query), args.repeats))]
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            rows.append((f"Dask LocalCluster, {workers} worker(s)",
                         _median_s(lambda: search_on_cluster(cache, query, client), args.repeats)))
    gb = cache.n_images * BYTES_PER_IMAGE / 1e9
    print(f"\nRegion search, {cache.n_images} images × 7×7×1280 float16 ({gb:.2f} GB), 2×2 box, median of {args.repeats}")
    print(f"{'run':44s} {'s':>7s} {'÷ single':>9s} {'GB/s':>6s}")
    for name, seconds in rows:
        print(f"{name:44s} {seconds:7.3f} {seconds / rows[0][1]:9.2f} {gb / seconds:6.2f}")
    one, two = rows[1][1], rows[2][1]
    print(f"2 workers ÷ 1 worker: {two / one:.2f} (this machine has 2 cores)")
    per_worker = gb / one
    print_plan(per_worker, args.usd_per_worker_hour, args.gpu_gbps, args.usd_per_gpu_hour, args.gpu_memory_gb)


def print_plan(cpu_gbps: float, usd_per_worker_hour: float, gpu_gbps: float | None = None,
               usd_per_gpu_hour: float = 3.0, gpu_memory_gb: float = 80.0) -> None:
    """Workers a 1-second exact query needs at 100 k, 1 M and 10 M images (the whole cache scanned
    once per query, held in the workers' memory), the price of keeping them, and the price of
    one query when they are kept busy."""
    print(f"\nPlan for a 1 s exact query (7×7×1280 float16, 125 KB per image; ResNet-50 conv5 would be "
          f"7×7×2048): CPU workers at the measured {cpu_gbps:.2f} GB/s, ${usd_per_worker_hour:.2f} per worker-hour"
          + (f"; GPUs at {gpu_gbps:.0f} GB/s, ${usd_per_gpu_hour:.2f} per GPU-hour, {gpu_memory_gb:.0f} GB each"
             if gpu_gbps else ""))
    print(f"{'images':>10s} {'cache GB':>9s} {'kind':>5s} {'workers':>8s} {'$ per hour':>11s} {'$ per query':>12s}")
    kinds = [("CPU", cpu_gbps, usd_per_worker_hour, float("inf"))]
    if gpu_gbps:
        kinds.append(("GPU", gpu_gbps, usd_per_gpu_hour, gpu_memory_gb))
    for n in (100_000, 1_000_000, 10_000_000):
        size = n * BYTES_PER_IMAGE / 1e9
        for kind, gbps, price, memory in kinds:
            workers = max(1, int(np.ceil(size / gbps)), int(np.ceil(size / memory)))
            print(f"{n:>10,d} {size:9.0f} {kind:>5s} {workers:>8,d} {workers * price:11.2f} "
                  f"{workers * price / 3600:12.5f}")

if __name__ == "__main__":
    main()
