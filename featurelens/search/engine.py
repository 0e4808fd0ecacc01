"""The scoring engine: best VFS window of every image, one matrix product per block of images.

For a query box of size ``(bh, bw)`` holding ``K`` mask cells ``k = (i_k, j_k)`` with weights
``m_k``, and ``q = f_query[box] ⊙ m``, the VFS score of the window at ``u`` is::

    cos(q, d_u) = Σ_k m_k² <f_query[box + k], f[u + k]> / (|q| · sqrt(Σ_k m_k² |f[u + k]|²))

so one block costs one product ``(K, C) @ (C, B·H·W)`` (the per-cell dot products with every
``m_k² f_query[box + k]``), per-cell squared norms ``(B, H, W)``, and two shifted sums over the
``K`` cells. Windows whose norm is 0 score 0 (never NaN). Blocks come from memory or, for zarr
arrays, from a background reader thread with a bounded queue (read-ahead).

**Precision on the CPU.** The default ``compute_dtype="float32"`` converts float16 (or int8)
rows to float32 in small, cache-resident pieces (1024 rows) and multiplies in float32. The
alternative ``"bfloat16"`` (rows rounded to bfloat16, ``torch.mm`` on bfloat16 tensors, fp32
accumulation inside oneDNN) was measured with ``benchmarks/bench_search.py`` on this project's
CPU — an AMD EPYC with AVX2 only: no avx512-bf16 and no AMX, so oneDNN has no native bf16 kernel
(``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is False). On 5,000 images of 7×7×1280 float16
features, one thread, it took 5.0× (1×1 mask), 4.0× (2×2), 5.4× (4×4) and 5.1× (free-form)
longer than float32. It also changes the ranking: its top-10 differed in order from float64's
for the 1×1 mask at N = 5,000 and lost one of the ten for the 2×2 mask at N = 500 (bfloat16 keeps
8 mantissa bits and the product comes back rounded to bfloat16, so scores closer than ~1e-3
swap), while float32 reproduced float64's top-10 exactly, order included, for every mask and
size measured. On a later machine with avx512-bf16 (an AMD EPYC where oneDNN has a native bf16
kernel), the bare bfloat16 product was 2.1× faster than float32 for a 16-row query, but rows must
still be converted (float16 → float32 → bfloat16: torch's direct float16 → bfloat16 copy is 4.6×
slower than both steps), and the whole search took about the same time as float32 (N = 5,000, one
thread: 0.16 / 0.16 / 0.26 / 0.25 s against 0.10 / 0.15 / 0.25 / 0.31 s for the 1×1, 2×2, 4×4 and
free-form masks). So float32 is the default and the CPU path; ``"bfloat16"`` stays an option for
GPUs, to be checked the same way before use.

**Where the time goes.** The product costs ``H·W·K·C`` multiply-adds per image whatever the
window positions, and runs at ~50–60 GFLOP/s per core (float32, AVX2; ~70 with AVX-512) — compute-bound for big
masks (4×4: K = 16), memory-bound for small ones. ``q`` is kept as ``(K, C)`` and multiplied as
``q_kc @ x_rc.T``: measured with MKL, this is 3–5× faster than ``x_rc @ q_ck`` with a contiguous
``(C, K)`` matrix for ``K`` ≤ 8 and up to 1.5× for ``K`` ≤ 20; ``K`` from 9 to 15 is padded with
zero rows to 16, which costs no more than ``K = 8``.
Thousands of small parallel regions make the multi-threaded CPU path sensitive to a busy core
(the threads wait for each other); on a shared machine ``torch.set_num_threads(1)`` is steadier.
"""

from __future__ import annotations

import queue
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch

from ..models import resolve_device
from .errors import SearchCancelled, SearchError
from .query import Query

__all__ = ["ComputeDtype", "ProgressFn", "load_features"]

ProgressFn = Callable[[int, int], None]
ComputeDtype = Literal["float32", "bfloat16"]
_SUB_ROWS = 1024           # rows (cells) converted at a time on the CPU: 5 MB of float32 at C = 1280
_BLOCK_BYTES = 16 * 2**20  # stored bytes per block of images (in memory or read ahead): 4 cache chunks
_DOTS_FLOATS = 2**22       # at most 16 MB of per-cell dot products (rows × K) at a time



def _torch_dtype(compute_dtype: str) -> torch.dtype:
    if compute_dtype not in ("float32", "bfloat16"):
        raise SearchError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
    return torch.float32 if compute_dtype == "float32" else torch.bfloat16


def _padded_k(k: int) -> int:
    """Rows of the query matrix: ``k``, or 16 for ``9 <= k < 16`` (faster matrix products)."""
    return 16 if 9 <= k < 16 else k


@dataclass(frozen=True, eq=False)
class _Prepared:
    """The query as the engine uses it, on the search device."""

    q_kc: torch.Tensor      # (K', C) compute dtype: row k is m_k² · f_query[box + k]; K' >= K (zero rows)
    m2_k: tuple[float, ...]  # (K,) mask weights squared
    offsets_k: tuple[tuple[int, int], ...]  # (i_k, j_k) inside the box
    box: tuple[int, int, int, int]
    grid_hw: tuple[int, int]
    q_norm: float
    dtype: torch.dtype      # the matrix product's dtype


def _prepare(query: Query, device: torch.device, dtype: torch.dtype = torch.float32) -> _Prepared:
    """Gather the non-zero mask cells of the box into the ``(K, C)`` query matrix."""
    r, c, bh, bw = query.box
    mask_hw = query.box_mask_hw.astype(np.float64)
    cells = [(i, j) for i in range(bh) for j in range(bw) if mask_hw[i, j] > 0]
    feats_kc = np.stack([query.feats_hwc[r + i, c + j].astype(np.float64) for i, j in cells])
    m2_k = np.array([mask_hw[i, j] ** 2 for i, j in cells])
    q_kc = np.zeros((_padded_k(len(cells)), query.channels), np.float32)
    q_kc[:len(cells)] = feats_kc * m2_k[:, None]
    return _Prepared(torch.from_numpy(q_kc).to(device=device, dtype=dtype), tuple(float(v) for v in m2_k),
                     tuple(cells), query.box, query.grid_hw, query.norm, dtype)


class _BlockScorer:
    """Scores blocks ``(B, H, W, C)`` → best score and best window position of each image."""

    def __init__(self, prep: _Prepared, device: torch.device):
        self.prep = prep
        self.device = device
        self._buf_rc: torch.Tensor | None = None   # (_SUB_ROWS, C) float32: rows converted for the product
        self._low_rc: torch.Tensor | None = None   # (_SUB_ROWS, C) bfloat16 copy when the product is bfloat16

    def __call__(self, block_nhwc: torch.Tensor, scale_nhw: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, H, W, C)`` float/int8 on the device (+ ``(B, H, W)`` scales for int8) →
        ``(best_b float32, position_b int64)``; position ``p`` is window row ``p // pw``, col ``p % pw``.

        Images are taken a few at a time so the dot products ``(K, rows)`` stay below 16 MB."""
        b, h, w, _ = block_nhwc.shape
        step = max(1, _DOTS_FLOATS // (h * w * self.prep.q_kc.shape[0]))
        bests, positions = [], []
        for start in range(0, b, step):
            scales = None if scale_nhw is None else scale_nhw[start:start + step]
            best, pos = self._score(block_nhwc[start:start + step], scales)
            bests.append(best)
            positions.append(pos)
        return torch.cat(bests), torch.cat(positions)

    def _score(self, block_nhwc: torch.Tensor, scale_nhw: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, w, c = block_nhwc.shape
        dots_kr, sq_r = self._dots(block_nhwc.reshape(b * h * w, c))
        if scale_nhw is not None:
            scale_r = scale_nhw.reshape(-1).to(torch.float32)
            dots_kr *= scale_r
            sq_r *= scale_r * scale_r
        return self._windows(dots_kr.view(-1, b, h, w), sq_r.view(b, h, w))

    def _dots(self, x_rc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R, C)`` → float32 dot products with the query rows ``(K', R)`` and squared norms ``(R,)``."""
        q_kc = self.prep.q_kc
        dtype = self.prep.dtype
        if self.device.type != "cpu" or (x_rc.dtype == dtype and dtype == torch.float32):
            x = x_rc.to(dtype)
            return (q_kc @ x.t()).float(), torch.linalg.vector_norm(x, dim=1, dtype=torch.float32).square_()
        rows, channels = x_rc.shape
        dots_kr = torch.empty(q_kc.shape[0], rows, dtype=torch.float32)
        norm_r = torch.empty(rows, dtype=torch.float32)
        if self._buf_rc is None or self._buf_rc.shape[1] != channels:
            self._buf_rc = torch.empty(_SUB_ROWS, channels, dtype=torch.float32)
            self._low_rc = None if dtype == torch.float32 else torch.empty(_SUB_ROWS, channels, dtype=dtype)
        for start in range(0, rows, _SUB_ROWS):
            stop = min(rows, start + _SUB_ROWS)
            buf = self._buf_rc[:stop - start]
            buf.copy_(x_rc[start:stop])  # float16 → float32 is vectorised; float16 → bfloat16 directly is not (4.6× slower)
            torch.linalg.vector_norm(buf, dim=1, dtype=torch.float32, out=norm_r[start:stop])
            if dtype == torch.float32:
                torch.mm(q_kc, buf.t(), out=dots_kr[:, start:stop])
            else:  # bfloat16 products come back as bfloat16 on the CPU
                low = self._low_rc[:stop - start]
                low.copy_(buf)
                dots_kr[:, start:stop] = torch.mm(q_kc, low.t())
        return dots_kr, norm_r.square_()

    def _windows(self, dots_kbhw: torch.Tensor, sq_bhw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shifted sums over the mask cells, cosine, and the best window of each image."""
        _, _, bh, bw = self.prep.box
        ph, pw = sq_bhw.shape[1] - bh + 1, sq_bhw.shape[2] - bw + 1
        num = torch.zeros(sq_bhw.shape[0], ph, pw, dtype=torch.float32, device=sq_bhw.device)
        den = torch.zeros_like(num)
        for k, ((i, j), m2) in enumerate(zip(self.prep.offsets_k, self.prep.m2_k)):
            num += dots_kbhw[k, :, i:i + ph, j:j + pw]
            den.add_(sq_bhw[:, i:i + ph, j:j + pw], alpha=m2)
        score = num / (den.sqrt() * self.prep.q_norm)
        score = torch.where(den > 0, score, torch.zeros_like(score)).clamp_(-1.0, 1.0)
        return score.view(score.shape[0], -1).max(dim=1)


# --- sources of blocks ---------------------------------------------------------------------


def _is_zarr(array: Any) -> bool:
    """A zarr array, or a subclass such as the caches' integrity-checked arrays (read in chunks, never whole)."""
    return any(cls.__module__.startswith("zarr") for cls in type(array).__mro__)


def _as_tensor(array: Any) -> torch.Tensor:
    """A numpy array or torch tensor as a tensor (no copy where possible)."""
    if isinstance(array, torch.Tensor):
        return array
    with warnings.catch_warnings():  # read-only numpy arrays (e.g. memory maps): we never write
        warnings.simplefilter("ignore", UserWarning)
        return torch.as_tensor(np.asarray(array))


def _itemsize(array: Any) -> int:
    """Bytes per element of a numpy, zarr or torch array."""
    return array.element_size() if isinstance(array, torch.Tensor) else np.dtype(array.dtype).itemsize


def _block_images(array: Any, block_images: int | None) -> int:
    """Images per block: a whole number of zarr chunks, about :data:`_BLOCK_BYTES` stored bytes."""
    if block_images is not None:
        if block_images < 1:
            raise SearchError(f"block_images must be at least 1, got {block_images}")
        return int(block_images)
    per_image = max(1, int(np.prod(array.shape[1:])) * _itemsize(array))
    n = max(1, _BLOCK_BYTES // per_image)
    if _is_zarr(array):
        chunk = int(array.chunks[0])
        n = max(chunk, n // chunk * chunk)
    return n


def _read(array: Any, scale: Any, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images ``start:stop`` of the features (and scales) as CPU tensors."""
    block = _as_tensor(array[start:stop])
    return block, None if scale is None else _as_tensor(scale[start:stop]).to(torch.float32)


_DONE = object()


def _read_ahead(array: Any, scale: Any, step: int, depth: int, pin: bool,
                stop_event: threading.Event) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Blocks read in a background thread, at most ``depth`` waiting in a bounded queue."""
    blocks: queue.Queue = queue.Queue(maxsize=max(1, depth))

    def put(item: Any) -> bool:
        while not stop_event.is_set():
            try:
                blocks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for start in range(0, array.shape[0], step):
                block, scale_block = _read(array, scale, start, min(array.shape[0], start + step))
                if pin:
                    block = block.pin_memory()
                if not put((start, block, scale_block)):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=reader, name="featurelens-search-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = blocks.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_event.set()
        thread.join(timeout=10)


def _in_memory(array: Any, scale: Any, step: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Blocks sliced from an array already in memory (no copies on the CPU)."""
    tensor = _as_tensor(array)
    scales = None if scale is None else _as_tensor(scale).to(torch.float32)
    for start in range(0, tensor.shape[0], step):
        yield start, tensor[start:start + step], None if scales is None else scales[start:start + step]


def _fits_on(device: torch.device, nbytes: int) -> bool:
    """True when ``nbytes`` take at most half of the free memory of a cuda device."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2
    return device.type == "cpu"


def _blocks(array: Any, scale: Any, device: torch.device, step: int,
            read_ahead: int, stop_event: threading.Event) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Choose how blocks reach the device: sliced in memory, or streamed with read-ahead."""
    on_device = isinstance(array, torch.Tensor) and array.device == device
    itemsize = _itemsize(array)
    nbytes = int(np.prod(array.shape)) * itemsize
    if on_device or (not _is_zarr(array) and _fits_on(device, nbytes)):
        for start, block, scale_block in _in_memory(array, scale, step):
            yield start, block.to(device), None if scale_block is None else scale_block.to(device)
        return
    pin = device.type == "cuda"
    for start, block, scale_block in _read_ahead(array, scale, step, read_ahead, pin, stop_event):
        yield (start, block.to(device, non_blocking=pin),
               None if scale_block is None else scale_block.to(device, non_blocking=pin))


@torch.no_grad()
def _scan(array: Any, query: Query, *, scale: Any = None, device: str | torch.device | None = None,
          block_images: int | None = None, read_ahead: int = 2, progress: ProgressFn | None = None,
          cancel: Any = None, compute_dtype: ComputeDtype = "float32") -> tuple[np.ndarray, np.ndarray, str]:
    """Best score ``(N,)`` float32 and best window position ``(N, 2)`` int32 (row, col) of every image."""
    dev = resolve_device(device)
    prep = _prepare(query, dev, _torch_dtype(compute_dtype))
    scorer = _BlockScorer(prep, dev)
    n = int(array.shape[0])
    scores_n = np.zeros(n, dtype=np.float32)
    pos_n = np.zeros(n, dtype=np.int64)
    step = _block_images(array, block_images)
    stop_event = threading.Event()
    blocks = _blocks(array, scale, dev, step, read_ahead, stop_event)
    try:
        for start, block, scale_block in blocks:
            if cancel is not None and cancel.is_set():
                raise SearchCancelled(f"search cancelled after {start} of {n} images")
            best, pos = scorer(block, scale_block)
            stop = start + block.shape[0]
            scores_n[start:stop] = best.cpu().numpy()
            pos_n[start:stop] = pos.cpu().numpy()
            if progress is not None:
                progress(stop, n)
    finally:
        stop_event.set()
        blocks.close()
    pw = query.grid_hw[1] - query.box[3] + 1
    rc_n2 = np.stack([pos_n // pw, pos_n % pw], axis=1).astype(np.int32)
    return scores_n, rc_n2, str(dev)


def load_features(array: Any, device: str | torch.device | None = None) -> torch.Tensor:
    """Read a whole ``(N, H, W, C)`` feature array (zarr, numpy) onto ``device`` once, to search it
    many times without reading it again (e.g. held by ``st.cache_resource``).

    Returns:
        the features as a torch tensor on ``device``, dtype unchanged (float16 for caches).
    """
    dev = resolve_device(device)
    if _is_zarr(array):
        step = _block_images(array, None)
        out = torch.empty(tuple(array.shape), dtype=_as_tensor(array[:1]).dtype, device=dev)
        for start in range(0, array.shape[0], step):
            out[start:start + step] = _as_tensor(array[start:start + step]).to(dev)
        return out
    return _as_tensor(array).to(dev)
