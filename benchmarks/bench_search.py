"""Region search speed and exactness: FeatureLens against VFS itself, against a bare bf16 matrix
product (the floor), in-memory against streaming from a Zarr cache larger than the memory budget.

All ratios are measured in the same run on the same machine, interleaved in rounds so that a
noisy neighbour slows both sides alike.

* **VFS** — ``visualfeaturesearch`` 1.0.0 (``pip install visualfeaturesearch==1.0.0``; a benchmark
  tool, not a FeatureLens requirement): its ``CachedSearchTool`` searches the same float16
  features in memory, in its own channels-first layout ``(N, C, H, W)`` (its ``compute_batch``
  needs that layout), batch 500, on the CPU. Target: FeatureLens ≥ 50× faster, same top-10.
* **Floor** — one ``torch.mm`` of the cache's ``(N·H·W, C)`` rows as bfloat16 with one bfloat16
  query column: reading every byte once. It runs over the float16 cache's own bytes reinterpreted
  as bfloat16 (no copy; the values are meaningless, the work is the same). Target: FeatureLens ≤ 2×
  the floor.
* **FeatureLens** — ``search_features`` over the cache held as a ``FeatureIndex`` (``load_features``
  once, as the app holds a cache: same float16 values, laid out cell-major with each cell's squared
  norm; VFS likewise holds its cache in its own layout). Its build time is printed. The column
  ``array s`` times the same search over the plain ``(N, H, W, C)`` numpy array, which the engine
  lays out block by block in its read-ahead thread (how caches streamed from Zarr are searched).
* **Exactness** — top-10 of every method against the exact scores, computed here in float64
  from the float32 features the float16 (and int8) caches were made from.
* **Storage and precision options** — int8 storage (one scale per cell) and the engine's
  ``compute_dtype="bfloat16"``: time and top-10 against float64. With ``../shared/data/pacs``
  present, also float16 and int8 storage against float32 on real features (EfficientNet-Lite0
  ``head`` of 700 PACS images, 210 queries).
* **Streaming** — a synthetic Zarr cache of ``--stream-gb`` (written here, zstd like real caches)
  searched in a fresh process: effective GB/s and peak RSS against ``--budget-gb``. When the file
  fits in the OS page cache the GB/s is that of a warm cache; make it larger than free RAM for disk speed.

Data: synthetic features like a CNN head's (7×7×1280, ReLU, ≤ 6): 64 prototype maps, each image
a prototype shifted by up to 2 cells, scaled and noised, so each query has hundreds of close
competitors (the hard case for top-10 agreement). The query is a held-out image.

    python -m benchmarks.bench_search --quick
    python -m benchmarks.bench_search --sizes 5000,20000 [--stream-gb 8 --budget-gb 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr
from zarr.codecs import ZstdCodec

from featurelens.search import (FeatureIndex, box_mask, grid_mask, load_features, quantize_int8, query_from_features,
                                search_features)

GRID, CHANNELS, PROTOTYPES, SEED, CHUNK = 7, 1280, 64, 0, 1000
PACS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pacs"


# --- data -------------------------------------------------------------------------------------


def prototypes() -> np.ndarray:
    """``(P, 7, 7, C)`` float32 prototype maps, sparse and non-negative."""
    rng = np.random.default_rng([SEED, 1])
    return np.maximum(rng.standard_normal((PROTOTYPES, GRID, GRID, CHANNELS), dtype=np.float32) * 1.5 - 0.5, 0)


def synth_feats(start: int, stop: int, protos: np.ndarray) -> np.ndarray:
    """Images ``start:stop`` (deterministic per chunk) as ``(B, 7, 7, C)`` float32 in [0, 6]."""
    rng = np.random.default_rng([SEED, 2, start])
    n = stop - start
    label, shift = rng.integers(0, PROTOTYPES, n), rng.integers(-2, 3, (n, 2))
    feats_nhwc = np.empty((n, GRID, GRID, CHANNELS), np.float32)
    for (dy, dx) in {tuple(s) for s in shift}:
        rows = np.flatnonzero((shift[:, 0] == dy) & (shift[:, 1] == dx))
        feats_nhwc[rows] = np.roll(protos[label[rows]], (dy, dx), axis=(1, 2))
    feats_nhwc *= rng.uniform(0.5, 1.5, (n, 1, 1, 1)).astype(np.float32)
    feats_nhwc += rng.standard_normal(feats_nhwc.shape, dtype=np.float32)
    return np.clip(feats_nhwc, 0, 6, out=feats_nhwc)


def masks() -> dict[str, np.ndarray]:
    """The four query regions on the 7×7 grid: hard squares and a free-form soft stroke."""
    out = {}
    for side, at in ((1, 3), (2, 2), (4, 1)):
        m = np.zeros((GRID, GRID), np.float32)
        m[at:at + side, at:at + side] = 1
        out[f"{side}x{side}"] = m
    yy, xx = np.mgrid[0:224, 0:224]
    stroke = (((xx - 90) / 60) ** 2 + ((yy - 120) / 35) ** 2 <= 1) | ((np.abs(xx - yy - 10) < 14) & (yy < 130))
    out["free-form"] = grid_mask(stroke, (GRID, GRID))
    return out


@dataclass
class Exact:
    """float64 scores of every image for every mask, computed chunk by chunk from float32."""

    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, feats_nhwc: np.ndarray, query_hwc: np.ndarray, mask_sets: dict[str, np.ndarray]) -> None:
        x = feats_nhwc.astype(np.float64)
        sq_nhw = np.square(x).sum(axis=-1)
        for name, mask in mask_sets.items():
            self.scores.setdefault(name, []).append(_exact_scores(x, sq_nhw, query_hwc, mask))

    def top(self, name: str, k: int = 10) -> np.ndarray:
        return _top(np.concatenate(self.scores[name]), k)


def _exact_scores(x_nhwc: np.ndarray, sq_nhw: np.ndarray, query_hwc: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Best VFS window score of each image, in float64 (masked cells: Σ m² <q_k, f> / |q| / |d|)."""
    rows, cols = np.nonzero(mask > 0)
    r0, c0, bh, bw = rows.min(), cols.min(), rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    m = mask[r0:r0 + bh, c0:c0 + bw].astype(np.float64)
    q = query_hwc[r0:r0 + bh, c0:c0 + bw].astype(np.float64) * m[:, :, None]
    q2_kc = (q * m[:, :, None]).reshape(-1, q.shape[-1])                     # rows m_k² f_query[box + k]
    dots = (x_nhwc.reshape(-1, x_nhwc.shape[-1]) @ q2_kc.T).reshape(*x_nhwc.shape[:3], -1)
    ph, pw = GRID - bh + 1, GRID - bw + 1
    num, den = np.zeros((len(x_nhwc), ph, pw)), np.zeros((len(x_nhwc), ph, pw))
    for k, (i, j) in enumerate((i, j) for i in range(bh) for j in range(bw)):
        num += dots[:, i:i + ph, j:j + pw, k]
        den += m[i, j] ** 2 * sq_nhw[:, i:i + ph, j:j + pw]
    score = np.where(den > 0, num / (np.sqrt(np.maximum(den, 1e-300)) * np.linalg.norm(q)), 0)
    return score.reshape(len(x_nhwc), -1).max(axis=1)


def _top(scores_n: np.ndarray, k: int = 10) -> np.ndarray:
    return np.argsort(-scores_n, kind="stable")[:k]


@dataclass
class Data:
    feats_nhwc: np.ndarray      # (N, 7, 7, C) float16
    q8_nhwc: np.ndarray         # (N, 7, 7, C) int8
    scale_nhw: np.ndarray       # (N, 7, 7) float32
    query_hwc: np.ndarray       # (7, 7, C) float32, a held-out image
    exact: Exact
    index: FeatureIndex | None = None    # feats_nhwc held for search (load_features)
    index8: FeatureIndex | None = None   # q8_nhwc with scale_nhw held for search


def make_data(n: int, mask_sets: dict[str, np.ndarray], with_int8: bool) -> Data:
    protos = prototypes()
    query_hwc = synth_feats(10**9, 10**9 + 1, protos)[0]
    feats = np.empty((n, GRID, GRID, CHANNELS), np.float16)
    m = n if with_int8 else 0
    q8, scale = np.empty((m, GRID, GRID, CHANNELS), np.int8), np.empty((m, GRID, GRID), np.float32)
    exact = Exact()
    for start in range(0, n, CHUNK):
        chunk = synth_feats(start, min(n, start + CHUNK), protos)
        feats[start:start + len(chunk)] = chunk
        if with_int8:
            q8[start:start + len(chunk)], scale[start:start + len(chunk)] = quantize_int8(chunk)
        for sub in range(0, len(chunk), 250):
            exact.add(chunk[sub:sub + 250], query_hwc, mask_sets)
    return Data(feats, q8, scale, query_hwc, exact)


# --- timed runs ---------------------------------------------------------------------------------


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def ours(data: Data, mask: np.ndarray, **kwargs) -> np.ndarray:
    """Best scores of every image; over ``data.index`` unless ``feats`` (+ ``scale_nhw``) is given."""
    query = query_from_features(data.query_hwc, mask, model="bench", layer="head")
    return search_features(kwargs.pop("feats", data.index), query, device="cpu", top_k=10, **kwargs).best_scores_n


def vfs_tool(feats_nchw: torch.Tensor, query_hwc: np.ndarray):
    from visualfeaturesearch.searchtool import CachedSearchTool

    tool = CachedSearchTool(torch.nn.Identity(), feats_nchw, "cpu", batch_size=500)
    tool.set_input_image(torch.from_numpy(np.ascontiguousarray(query_hwc.transpose(2, 0, 1))))
    return tool


def vfs_scores(tool, mask: np.ndarray) -> np.ndarray:
    sims, _, _ = tool.compute(mask.astype(np.float64))
    return sims.numpy()


def floor_mm(rows_rc_bf16: torch.Tensor, q_c1_bf16: torch.Tensor) -> None:
    torch.mm(rows_rc_bf16, q_c1_bf16)


def agreement(top: np.ndarray, exact_top: np.ndarray) -> str:
    """``"10/10 ="`` (same order), ``"10/10"`` (same set) or ``"8/10"`` (shared ids)."""
    shared = len(set(top.tolist()) & set(exact_top.tolist()))
    return f"{shared}/10" + (" =" if np.array_equal(top, exact_top) else "")


# --- the comparison ------------------------------------------------------------------------------


def run_size(n: int, rounds: int, vfs_rounds: int, with_vfs: bool, mask_sets: dict[str, np.ndarray],
             with_options: bool) -> list[dict]:
    t0 = time.perf_counter()
    data = make_data(n, mask_sets, with_int8=with_options)
    t1 = time.perf_counter()
    data.index = load_features(data.feats_nhwc, device="cpu")
    t2 = time.perf_counter()
    if with_options:
        data.index8 = load_features(data.q8_nhwc, device="cpu", scale_nhw=data.scale_nhw)
    print(f"\nN = {n:,}: {data.feats_nhwc.nbytes / 1e9:.2f} GB float16 in memory (data and float64 "
          f"reference made in {t1 - t0:.0f} s; held as a FeatureIndex by load_features in {t2 - t1:.2f} s)", flush=True)
    rows_bf16 = torch.from_numpy(data.feats_nhwc.reshape(-1, CHANNELS)).view(torch.bfloat16)  # same bytes
    q_bf16 = torch.ones(CHANNELS, 1, dtype=torch.bfloat16)
    nchw = torch.from_numpy(data.feats_nhwc).permute(0, 3, 1, 2).contiguous() if with_vfs else None
    tool = vfs_tool(nchw, data.query_hwc) if with_vfs else None
    results = []
    for name, mask in mask_sets.items():
        ours(data, mask)  # warm-up
        t_ours, t_floor, t_vfs, vfs_top = [], [], [], None
        for round_ in range(rounds):
            seconds, scores = timed(ours, data, mask)
            t_ours.append(seconds)
            t_floor.append(timed(floor_mm, rows_bf16, q_bf16)[0])
            if with_vfs and round_ < vfs_rounds:
                seconds, vfs = timed(vfs_scores, tool, mask)
                t_vfs.append(seconds)
                vfs_top = _top(vfs)
        exact_top = data.exact.top(name)
        t_array, array_scores = timed(ours, data, mask, feats=data.feats_nhwc)
        row = {"N": n, "mask": name, "ours_s": float(np.median(t_ours)), "floor_s": float(np.median(t_floor)),
               "ours_top10": agreement(_top(scores), exact_top), "array_s": t_array,
               "array_top10": agreement(_top(array_scores), exact_top)}
        if with_vfs:
            row |= {"vfs_s": float(np.median(t_vfs)), "vfs_top10": agreement(vfs_top, exact_top),
                    "ours_vs_vfs_top10": agreement(_top(scores), vfs_top)}
        if with_options:
            row |= options(data, mask, exact_top)
        results.append(row)
        print_row(row, with_vfs)
    return results


def options(data: Data, mask: np.ndarray, exact_top: np.ndarray) -> dict:
    """int8 storage and bfloat16 compute: time and top-10 against float64."""
    t8, s8 = timed(ours, data, mask, feats=data.index8)
    tbf, sbf = timed(ours, data, mask, compute_dtype="bfloat16")
    return {"int8_s": t8, "int8_top10": agreement(_top(s8), exact_top),
            "bf16_s": tbf, "bf16_top10": agreement(_top(sbf), exact_top)}


HEADER = (f"{'N':>7s} {'mask':9s} {'ours s':>8s} {'array s':>8s} {'VFS s':>8s} {'×faster':>8s} {'floor s':>8s} {'×floor':>7s} "
          f"{'ours/f64':>9s} {'VFS/f64':>8s} {'ours/VFS':>8s} | {'int8 s':>7s} {'int8/f64':>9s} | "
          f"{'bf16 s':>7s} {'bf16/f64':>9s}")


def print_row(row: dict, with_vfs: bool) -> None:
    vfs = (f"{row['vfs_s']:8.2f} {row['vfs_s'] / row['ours_s']:7.0f}×" if with_vfs else f"{'-':>8s} {'-':>8s}")
    agree = (f"{row['vfs_top10']:>8s} {row['ours_vs_vfs_top10']:>8s}" if with_vfs else f"{'-':>8s} {'-':>8s}")
    extra = (f"{row['int8_s']:7.3f} {row['int8_top10']:>9s} | {row['bf16_s']:7.3f} {row['bf16_top10']:>9s}"
             if "int8_s" in row else f"{'-':>7s} {'-':>9s} | {'-':>7s} {'-':>9s}")
    print(f"{row['N']:7d} {row['mask']:9s} {row['ours_s']:8.3f} {row['array_s']:8.3f} {vfs} {row['floor_s']:8.3f} "
          f"{row['ours_s'] / row['floor_s']:6.2f}× {row['ours_top10']:>9s} {agree} | {extra}", flush=True)


# --- real features: storage against float32 -------------------------------------------------------


def run_real_storage(folder: Path) -> dict:
    """Top-10 of float16 and int8 storage against float32 on real head features of PACS images."""
    import featurelens as fl
    from featurelens.images import folder_images

    model = fl.load_model("efficientnet_lite0", device="cpu")
    feats_nhwc = model.features([image.load() for image in folder_images(folder)], ["head"], batch_size=50)["head"]
    half_nhwc, (q8_nhwc, scale_nhw) = feats_nhwc.astype(np.float16), quantize_int8(feats_nhwc)
    overlap, same, worst = {"float16": [], "int8": []}, {"float16": 0, "int8": 0}, 0.0
    for index in range(0, len(feats_nhwc), 10):
        for box in ((0.3, 0.3, 0.7, 0.7), (0.4, 0.4, 0.55, 0.55), (0.1, 0.5, 0.5, 0.9)):
            query = query_from_features(feats_nhwc[index], box_mask(box, (GRID, GRID)), model="m", layer="head",
                                        image_index=index)
            exact = search_features(feats_nhwc, query, device="cpu")
            for name, kwargs in (("float16", {"feats_nhwc": half_nhwc}),
                                 ("int8", {"feats_nhwc": q8_nhwc, "scale_nhw": scale_nhw})):
                result = search_features(query=query, device="cpu", **kwargs)
                overlap[name].append(len({h.index for h in exact.top} & {h.index for h in result.top}))
                same[name] += [h.index for h in exact.top] == [h.index for h in result.top]
                if name == "int8":
                    worst = max(worst, float(np.abs(result.best_scores_n - exact.best_scores_n).max()))
    n = len(overlap["int8"])
    for name in overlap:
        print(f"real PACS head features, {len(feats_nhwc)} images, {n} queries: {name} storage vs float32 — top-10 "
              f"overlap mean {np.mean(overlap[name]):.2f}/10 (min {min(overlap[name])}), same order in "
              f"{same[name]}/{n}" + (f", largest score change {worst:.4f}" if name == "int8" else ""), flush=True)
    return {"queries": n, "overlap": {k: float(np.mean(v)) for k, v in overlap.items()}, "same_order": same,
            "int8_max_score_change": worst}


# --- streaming ---------------------------------------------------------------------------------

_CHILD = r"""
import json, re, sys, time
import numpy as np, torch, zarr
from featurelens.search import query_from_features, search_features

def peak_kb():  # this process's peak resident memory (VmHWM; getrusage's maxrss survives exec)
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))

torch.set_num_threads(int(sys.argv[2]))
array = zarr.open_array(sys.argv[1], mode="r")
mask = np.zeros((7, 7), np.float32); mask[2:4, 2:4] = 1
query = query_from_features(np.asarray(array[0], np.float32), mask, model="bench", layer="head")
search_features(array[:64], query, device="cpu")            # warm-up: threads, kernels
base = peak_kb()
start = time.perf_counter()
result = search_features(array, query, device="cpu", read_ahead=2)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_kb": peak_kb(),
                  "base_kb": base, "top": result.top[0].index}))
"""


def write_stream_cache(path: Path, gigabytes: float) -> tuple[int, float]:
    """A Zarr array of random float16 features, chunks of 32 images (4 MB, like real caches)."""
    n = max(64, int(gigabytes * 1e9 / (GRID * GRID * CHANNELS * 2)) // 32 * 32)
    array = zarr.create_array(str(path), shape=(n, GRID, GRID, CHANNELS), chunks=(32, GRID, GRID, CHANNELS),
                              dtype="float16", compressors=(ZstdCodec(level=1, checksum=True),),
                              dimension_names=("image", "y", "x", "channel"))
    rng = np.random.default_rng(SEED)
    for start in range(0, n, 512):
        stop = min(n, start + 512)
        array[start:stop] = np.maximum(rng.standard_normal((stop - start, GRID, GRID, CHANNELS),
                                                           dtype=np.float32), 0).astype(np.float16)
    return n, n * GRID * GRID * CHANNELS * 2 / 1e9


def run_streaming(gigabytes: float, budget_gb: float, folder: Path | None) -> dict:
    """Write the cache, then search it in a fresh process (its own peak memory, nothing inherited)."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        t0 = time.perf_counter()
        n, size_gb = write_stream_cache(Path(tmp) / "stream.zarr", gigabytes)
        print(f"\nstreaming: wrote {n:,} images ({size_gb:.2f} GB float16) in {time.perf_counter() - t0:.0f} s",
              flush=True)
        done = subprocess.run([sys.executable, "-c", _CHILD, str(Path(tmp) / "stream.zarr"),
                               str(torch.get_num_threads())], capture_output=True, text=True, check=True)
        out = json.loads(done.stdout.strip().splitlines()[-1])
    row = {"N": n, "size_gb": size_gb, "seconds": out["seconds"], "gb_per_s": size_gb / out["seconds"],
           "peak_gb": out["peak_kb"] / 2**20, "base_gb": out["base_kb"] / 2**20, "budget_gb": budget_gb}
    verdict = "within" if row["peak_gb"] <= budget_gb else "OVER"
    print(f"streaming {size_gb:.2f} GB (2x2 mask): {row['seconds']:.1f} s, {row['gb_per_s']:.2f} GB/s effective; "
          f"peak RSS {row['peak_gb']:.2f} GB (after imports and warm-up {row['base_gb']:.2f} GB), {verdict} the "
          f"{budget_gb:g} GB budget ({size_gb / budget_gb:.1f}× the budget on disk)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000,50000",
                        help="comma-separated N (default 5000,20000,50000; '' for streaming only)")
    parser.add_argument("--quick", action="store_true", help="N = 500,2000, 0.5 GB streaming, 1 round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per mask (default 3)")
    parser.add_argument("--vfs-rounds", type=int, default=1, help="rounds that also time VFS (default 1: it is slow)")
    parser.add_argument("--no-vfs", action="store_true", help="skip visualfeaturesearch")
    parser.add_argument("--no-real", action="store_true", help="skip the real-feature storage check (PACS)")
    parser.add_argument("--no-options", action="store_true",
                        help="skip int8 storage and bf16 compute (they hold two more copies of the first size)")
    parser.add_argument("--stream-gb", type=float, default=3.0, help="size of the streamed Zarr cache (0: skip)")
    parser.add_argument("--budget-gb", type=float, default=1.0, help="memory the streaming search may use")
    parser.add_argument("--stream-dir", type=Path, help="where to write the streamed cache (default: the temp folder)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); on a shared "
                        "machine 1 gives stable numbers: fine-grained parallel work stalls when a core is busy")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [500, 2000] if args.quick else [int(v) for v in args.sizes.split(",") if v.strip()]
    rounds = 1 if args.quick else args.rounds
    stream_gb = 0.5 if args.quick else args.stream_gb
    with_vfs = not args.no_vfs and _has_vfs()
    print(f"Region search, CPU, {torch.get_num_threads()} torch threads, float16 cache {GRID}×{GRID}×{CHANNELS}, "
          f"median of {rounds} rounds; top-10 columns: shared ids with float64 ('=' same order); int8 and "
          f"bf16 (compute_dtype) at the first size only")
    print(HEADER)
    mask_sets = masks()
    rows = [row for i, n in enumerate(sizes)
            for row in run_size(n, rounds, min(rounds, args.vfs_rounds), with_vfs, mask_sets, with_options=i == 0 and not args.no_options)]
    real = run_real_storage(PACS) if PACS.is_dir() and not args.quick and not args.no_real else None
    stream = run_streaming(stream_gb, args.budget_gb, args.stream_dir) if stream_gb > 0 else None
    if args.json:
        args.json.write_text(json.dumps({"search": rows, "real_storage": real, "streaming": stream}, indent=1))


def _has_vfs() -> bool:
    try:
        import visualfeaturesearch.searchtool  # noqa: F401
    except ImportError as exc:
        print(f"visualfeaturesearch is not installed ({exc}); `pip install visualfeaturesearch==1.0.0` to compare")
        return False
    return True


if __name__ == "__main__":
    main()
