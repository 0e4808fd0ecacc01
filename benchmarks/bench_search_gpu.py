"""Region search on an accelerator (cuda / mps) against this machine's CPU, in the same run: the
GPU path of issue 7 (cache held on the device when it fits, else streamed from the host in
blocks with read-ahead and pinned memory) and the per-GPU scan rate that issue 14's plan needs.

For each size N (float16 7×7×1280 synthetic features, the same generator as ``bench_search``) and
each mask (1×1, 2×2, 4×4, free-form) it prints:

* **device, in memory** — the cache loaded onto the device once (``load_features``), then
  searched: seconds, GB/s of cache scanned, ratio against the CPU in the same run;
* **device, streamed** — the same features searched from host memory (a Zarr array, so the
  engine streams it block by block): what a cache larger than the device's memory costs;
* **bfloat16 compute** on the device (``compute_dtype="bfloat16"``);
* top-10 of each against the CPU's float32 search (which ``bench_search`` shows equal to float64).

On a machine without an accelerator it says so and exits (0): nothing to compare.

    python -m benchmarks.bench_search_gpu [--sizes 20000,100000] [--rounds 5] [--cpu-threads N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from benchmarks.bench_search import CHANNELS, CHUNK, GRID, prototypes, agreement, masks, synth_feats
from featurelens.models import resolve_device
from featurelens.search import load_features, query_from_features, search_features

BYTES_PER_IMAGE = GRID * GRID * CHANNELS * 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _median_s(fn, device: torch.device, rounds: int) -> tuple[float, object]:
    fn()  # warm-up: kernels, allocator, page cache
    times, out = [], None
    for _ in range(rounds):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def _features(n: int) -> np.ndarray:
    protos = prototypes()
    feats = np.empty((n, GRID, GRID, CHANNELS), np.float16)
    for start in range(0, n, CHUNK):
        feats[start:start + CHUNK] = synth_feats(start, min(n, start + CHUNK), protos)
    return feats


def _top(result) -> np.ndarray:
    return np.array([hit.index for hit in result.top])


def run_size(n: int, device: torch.device, rounds: int, folder: Path) -> None:
    t0 = time.perf_counter()
    feats = _features(n)
    query_hwc = synth_feats(10**9, 10**9 + 1, prototypes())[0]
    gb = n * BYTES_PER_IMAGE / 1e9
    on_device = load_features(feats, device=device)
    on_cpu = load_features(feats, device="cpu")
    stored = zarr.create_array(str(folder / f"n{n}.zarr"), shape=feats.shape, chunks=(32, GRID, GRID, CHANNELS),
                               dtype="float16", compressors=None)
    stored[:] = feats
    print(f"\nN = {n:,}: {gb:.2f} GB float16 (made, copied to {device} and written to Zarr in "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{'mask':9s} {'CPU s':>7s} {'dev s':>7s} {'GB/s':>6s} {'×CPU':>6s} {'stream s':>9s} {'GB/s':>6s} "
          f"{'bf16 s':>7s} {'dev/CPU':>8s} {'stream/CPU':>10s} {'bf16/CPU':>9s}")
    for name, mask in masks().items():
        query = query_from_features(query_hwc, mask, model="bench", layer="head")
        t_cpu, cpu = _median_s(lambda: search_features(on_cpu, query, device="cpu"), torch.device("cpu"), rounds)
        t_dev, dev = _median_s(lambda: search_features(on_device, query, device=device), device, rounds)
        t_stream, stream = _median_s(lambda: search_features(stored, query, device=device), device, max(1, rounds // 2))
        t_bf16, bf16 = _median_s(lambda: search_features(on_device, query, device=device, compute_dtype="bfloat16"),
                                 device, rounds)
        ref = _top(cpu)
        print(f"{name:9s} {t_cpu:7.3f} {t_dev:7.4f} {gb / t_dev:6.1f} {t_cpu / t_dev:5.0f}× {t_stream:9.3f} "
              f"{gb / t_stream:6.2f} {t_bf16:7.4f} {agreement(_top(dev), ref):>8s} "
              f"{agreement(_top(stream), ref):>10s} {agreement(_top(bf16), ref):>9s}", flush=True)
    del on_device, on_cpu
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="comma-separated N (default 20000,100000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mask (median)")
    parser.add_argument("--cpu-threads", type=int, help="torch CPU threads for the CPU side (default: torch's)")
    parser.add_argument("--dir", type=Path, help="where to write the streamed Zarr copies (default: temp folder)")
    parser.add_argument("--device", help="cuda, cuda:1, mps (default: the one FeatureLens picks); cpu runs the "
                                         "script against itself, a smoke test")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu" and args.device is None:
        print("No cuda or mps device here: nothing to compare (bench_search measures the CPU).")
        return
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    name = {"cuda": lambda: torch.cuda.get_device_name(device), "mps": lambda: "Apple GPU"}.get(device.type, lambda: "")()
    print(f"Region search on {device} ({name}) against the CPU ({torch.get_num_threads()} threads), float16 "
          f"{GRID}×{GRID}×{CHANNELS}; top-10 columns: shared ids with the CPU's float32 search ('=' same order)")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in (int(v) for v in args.sizes.split(",") if v.strip()):
            run_size(n, device, args.rounds, Path(tmp))
    print("\nIssue 14's plan: workers for a 1 s query = cache GB ÷ the in-memory GB/s above "
          "(python -m benchmarks.bench_cluster --gpu-gbps X prints the table).")


if __name__ == "__main__":
    sys.exit(main())
