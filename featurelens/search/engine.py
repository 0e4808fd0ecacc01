"""The scoring engine: the best VFS window of every image, a few matrix products per block of images.

For a query box of size ``(bh, bw)`` holding ``K`` mask cells ``k`` at offsets ``o_k`` with weights
``m_k``, and ``q = f_query[box] ⊙ m``, the VFS score of the window at ``u`` is::

    cos(q, d_u) = Σ_k m_k² <f_query[box + o_k], f[u + o_k]> / (|q| · sqrt(Σ_k m_k² |f[u + o_k]|²))

**Only the products a window uses.** Grid cell ``l`` of an image takes part in window ``u`` as
mask cell ``k`` only when ``l = u + o_k`` and ``u`` is a valid window, so the cell needs the dot
products with the query rows of those ``k`` only: ``K_l ≤ K`` of them. Blocks are cell-major
(:mod:`featurelens.search.index`): cell ``l`` of ``S`` images is ``S`` contiguous rows, and one
product ``(K_l, C) @ (C, S)`` per cell gives them. The ``(Σ_l K_l, S)`` dot products then reach
their windows through one ``(P, Σ_l K_l)`` 0/1 matrix (``P`` windows), and the window norms come
from the cells' squared norms (kept with the features) through one ``(P, H·W)`` matrix of the
``m_k²``. This costs ``P·K·C`` multiply-adds per image instead of ``H·W·K·C`` for every cell with
every query row: for a 4×4 box on a 7×7 grid 256·C instead of 784·C, for the benchmark's free-form
5×5 box 162·C instead of 882·C (``benchmarks/bench_search.py``). Windows whose norm is 0 score 0
(never NaN).

**Precision on the CPU.** The default ``compute_dtype="float32"`` converts one cell of the block's
float16 (or int8) rows to float32 at a time (``S × C``, cache-resident) and multiplies in float32.
The alternative ``"bfloat16"`` (rows rounded to bfloat16, ``torch.mm`` on bfloat16 tensors, fp32
accumulation inside oneDNN) was measured with ``benchmarks/bench_search.py``: on an AMD EPYC with
AVX2 only (no native bf16 kernel in oneDNN) the whole search took 4–5× longer than float32; on an
AMD EPYC with avx512-bf16 the bare bfloat16 product was 2.1× faster than float32 for a 16-row
query, but rows must still be converted (float16 → float32 → bfloat16: torch's direct float16 →
bfloat16 copy is 4.6× slower than both steps) and the whole search took about as long as float32.
It also changes the ranking (bfloat16 keeps 8 mantissa bits and, on the CPU, the product comes back
rounded to bfloat16, so scores closer than ~1e-3 swap), while float32 reproduced float64's top-10
exactly, order included, for every mask and size measured. So float32 is the default and the CPU
path; ``"bfloat16"`` stays an option for GPUs, to be checked the same way before use.

**Shapes of the products (CPU, MKL, one thread, measured).** ``q_kc @ x_sc.T`` with ``S`` = 256
rows takes about as long for ``K`` = 3 as 4, 5–7 as 8, 9–11 as 12 and 13–15 as 16, so query rows
are padded with zeros to those sizes; ``S`` = 256 (one cell of 256 images, 1.25 MB of float32 at
C = 1280) was fastest among 128, 192 and 256. MKL multiplies strided rows as fast as contiguous
ones, but converting float16 rows that lie 49 cells apart is 3× slower than contiguous ones, hence
the cell-major layout. With ``benchmarks/bench_search.py`` (7×7×1280 float16 held by
:func:`~featurelens.search.load_features`, one thread, AMD EPYC with AVX-512) a search took
1.3–1.5× (1×1 mask), 1.8× (2×2), 2.1–2.7× (4×4) and 1.7–1.8× (free-form) the time of one bfloat16
matrix-vector product over the cache's bytes, at N = 5,000 and 20,000; the former single product
of every cell with every query row took 1.7–2.3×, 2.6–2.8×, 3.9–4.3× and 4.5–4.7×.
Thousands of small parallel regions make the multi-threaded CPU path sensitive to a busy core
(the threads wait for each other); on a shared machine ``torch.set_num_threads(1)`` is steadier.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch

from ..models import resolve_device
from .errors import SearchCancelled, SearchError
from .index import CellBlock, FeatureIndex, as_tensor, cell_block, pass_images, read_images
from .query import Query

__all__ = ["ComputeDtype", "ProgressFn"]

ProgressFn = Callable[[int, int], None]
ComputeDtype = Literal["float32", "bfloat16"]


def _torch_dtype(compute_dtype: str) -> torch.dtype:
    if compute_dtype not in ("float32", "bfloat16"):
        raise SearchError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
    return torch.float32 if compute_dtype == "float32" else torch.bfloat16


def _padded_k(k: int) -> int:
    """Rows of a cell's query matrix: ``k`` up to 2, else the next multiple of 4 (as fast, measured)."""
    return k if k <= 2 else -(-k // 4) * 4


@dataclass(frozen=True)
class _Cell:
    """One grid cell's share of the query: its query rows and where their dot products go."""

    cell: int                # l = row · W + col on the grid
    q_kc: torch.Tensor       # (K_l', C) compute dtype: rows m_k² · f_query[box + o_k] for the k it serves, zero-padded
    row: int                 # first of its K_l' rows among the block's dot products


@dataclass(frozen=True, eq=False)
class _Prepared:
    """The query as the engine uses it, on the search device."""

    cells: tuple[_Cell, ...]
    dots_rows: int               # Σ_l K_l'
    gather_pd: torch.Tensor      # (P, dots_rows) float32 0/1: which dot products add up to window p
    weights_pl: torch.Tensor     # (P, H·W) float32: m_k² where cell l is mask cell k of window p
    q_norm: float
    dtype: torch.dtype           # the products' dtype


def _prepare(query: Query, device: torch.device, dtype: torch.dtype = torch.float32) -> _Prepared:
    """Each grid cell's query rows, and the matrices that sum dot products and norms into windows."""
    r, c, bh, bw = query.box
    mask_hw = query.box_mask_hw.astype(np.float64)
    offsets = [(i, j) for i in range(bh) for j in range(bw) if mask_hw[i, j] > 0]
    m2_k = np.array([mask_hw[i, j] ** 2 for i, j in offsets])
    q_kc = np.stack([query.feats_hwc[r + i, c + j].astype(np.float64) for i, j in offsets]) * m2_k[:, None]
    served, weights_pl = _windows_of_cells(offsets, m2_k, query.grid_hw, (bh, bw))
    cells, gather = [], []
    for cell, pairs in enumerate(served):
        if not pairs:
            continue
        rows_kc = np.zeros((_padded_k(len(pairs)), query.channels), np.float32)
        rows_kc[:len(pairs)] = q_kc[[k for k, _ in pairs]]
        cells.append(_Cell(cell, torch.from_numpy(rows_kc).to(device=device, dtype=dtype), len(gather)))
        gather += [p for _, p in pairs] + [-1] * (len(rows_kc) - len(pairs))
    gather_pd = np.zeros((weights_pl.shape[0], len(gather)), np.float32)
    rows = [row for row, p in enumerate(gather) if p >= 0]
    gather_pd[[gather[row] for row in rows], rows] = 1
    as_device = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return _Prepared(tuple(cells), len(gather), as_device(gather_pd), as_device(weights_pl), query.norm, dtype)


def _windows_of_cells(offsets: list[tuple[int, int]], m2_k: np.ndarray, grid_hw: tuple[int, int],
                      box_hw: tuple[int, int]) -> tuple[list[list[tuple[int, int]]], np.ndarray]:
    """Which windows each grid cell serves: per cell ``l`` the pairs ``(k, p)`` with ``l = u_p + o_k``,
    and ``weights_pl`` ``(P, H·W)``, the ``m_k²`` that sum the cells' squared norms into each window's."""
    (h, w), (bh, bw) = grid_hw, box_hw
    ph, pw = h - bh + 1, w - bw + 1
    served: list[list[tuple[int, int]]] = [[] for _ in range(h * w)]
    weights_pl = np.zeros((ph * pw, h * w), np.float32)
    for k, (i, j) in enumerate(offsets):
        for u in range(ph):
            for v in range(pw):
                cell = (u + i) * w + (v + j)
                served[cell].append((k, u * pw + v))
                weights_pl[u * pw + v, cell] += m2_k[k]
    return served, weights_pl


class _BlockScorer:
    """Scores cell-major blocks → best score and best window position of each image."""

    def __init__(self, prep: _Prepared, device: torch.device, channels: int):
        self.prep = prep
        self.device = device
        self.channels = channels
        self.step = pass_images(channels, device)
        self._width = -1           # images of the pass the buffers below are for
        self._dots_ds: torch.Tensor | None = None          # (Σ_l K_l', width) float32
        self._outs: list[torch.Tensor] = []                # each cell's rows of it
        self._buf_sc: torch.Tensor | None = None           # (width, C) float32: one cell's rows converted (CPU)

    def __call__(self, block: CellBlock) -> tuple[torch.Tensor, torch.Tensor]:
        """A block of ``S`` images → ``(best_s float32, position_s int64)``; position ``p`` is window
        row ``p // pw``, col ``p % pw``. Images are scored ``step`` at a time (see :func:`pass_images`)."""
        bests, positions = [], []
        for start in range(0, block.images, self.step):
            best, pos = self._score(block, start, min(block.images, start + self.step))
            bests.append(best)
            positions.append(pos)
        return torch.cat(bests), torch.cat(positions)

    def _buffers(self, width: int) -> None:
        """Buffers for passes of ``width`` images, kept while the width stays (every full pass);
        the views are made once, not per cell and pass (~5% of a search, measured)."""
        if width == self._width:
            return
        self._width = width
        self._dots_ds = torch.empty(self.prep.dots_rows, width, dtype=torch.float32, device=self.device)
        self._outs = [self._dots_ds[cell.row:cell.row + cell.q_kc.shape[0]] for cell in self.prep.cells]
        self._buf_sc = torch.empty(width, self.channels, dtype=torch.float32) if self.device.type == "cpu" else None

    def _score(self, block: CellBlock, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        prep = self.prep
        self._buffers(stop - start)
        whole = start == 0 and stop == block.images
        feats_lsc = block.feats_lsc if whole else block.feats_lsc[:, start:stop]
        norm_ls = None  # computed here when the block has no squared norms; unused cells keep 0 (weight 0)
        if block.sq_ls is None:
            norm_ls = torch.zeros(feats_lsc.shape[0], stop - start, dtype=torch.float32, device=self.device)
        for cell, out in zip(prep.cells, self._outs):
            self._dots(cell.q_kc, feats_lsc[cell.cell], out, None if norm_ls is None else norm_ls[cell.cell])
            if block.scale_ls is not None:
                out *= block.scale_ls[cell.cell, start:stop]
        if norm_ls is None:
            sq_ls = block.sq_ls if whole else block.sq_ls[:, start:stop]
        else:
            sq_ls = norm_ls.square_() if block.scale_ls is None else norm_ls.mul_(block.scale_ls[:, start:stop]).square_()
        num_ps = prep.gather_pd @ self._dots_ds
        den_ps = prep.weights_pl @ sq_ls
        score = num_ps / (den_ps.sqrt() * prep.q_norm)
        score = torch.where(den_ps > 0, score, torch.zeros_like(score)).clamp_(-1.0, 1.0)
        return score.max(dim=0)

    def _dots(self, q_kc: torch.Tensor, x_sc: torch.Tensor, out_ks: torch.Tensor, norm_s: torch.Tensor | None) -> None:
        """``out_ks = q_kc @ x_sc.T`` in float32, converting the rows ``x_sc`` to the product's dtype;
        with ``norm_s``, also the rows' norms."""
        if self._buf_sc is None or x_sc.dtype == torch.float32:
            x = x_sc.to(torch.float32)
        else:  # one cell of the pass at a time, into a buffer that stays in the core's cache
            x = self._buf_sc
            x.copy_(x_sc)  # float16 → float32 is vectorised; float16 → bfloat16 directly is not (4.6× slower)
        if norm_s is not None:
            torch.linalg.vector_norm(x, dim=1, out=norm_s)
        if self.prep.dtype == torch.float32:
            torch.mm(q_kc, x.t(), out=out_ks)
        else:  # bfloat16 products come back as bfloat16 on the CPU
            out_ks.copy_(q_kc @ x.to(self.prep.dtype).t())


# --- sources of blocks ---------------------------------------------------------------------


def _read(array: Any, scale: Any, start: int, stop: int) -> CellBlock:
    """Images ``start:stop`` of the features (and scales) as a cell-major block on the CPU (norms left
    to the scorer, which converts the rows anyway)."""
    return cell_block(start, as_tensor(array[start:stop]), None if scale is None else as_tensor(scale[start:stop]),
                      norms=False)


_DONE = object()


def _read_ahead(array: Any, scale: Any, step: int, depth: int, pin: bool,
                stop_event: threading.Event) -> Iterator[CellBlock]:
    """Blocks read and laid out in a background thread, at most ``depth`` waiting in a bounded queue
    (measured on 2 cores: 15–25% faster for arrays in memory than laying out in the scorer's thread,
    as fast for Zarr caches, where decompressing is the slow part)."""
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
                block = _read(array, scale, start, min(array.shape[0], start + step))
                if not put(block.pin_memory() if pin else block):
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


def _blocks(array: Any, scale: Any, device: torch.device, step: int,
            read_ahead: int, stop_event: threading.Event) -> Iterator[CellBlock]:
    """How blocks reach the device: from a :class:`FeatureIndex` as they are, laid out on the
    device for a tensor already there, else read and laid out ahead in a background thread."""
    if isinstance(array, FeatureIndex):
        for block in array:
            yield block.to(device)
        return
    if isinstance(array, torch.Tensor) and array.device == device and device.type != "cpu":
        for start in range(0, array.shape[0], step):
            yield cell_block(start, array[start:start + step], None if scale is None else scale[start:start + step],
                             norms=False)
        return
    pin = device.type == "cuda"
    for block in _read_ahead(array, scale, step, read_ahead, pin, stop_event):
        yield block.to(device, non_blocking=pin)


@torch.no_grad()
def _scan(array: Any, query: Query, *, scale: Any = None, device: str | torch.device | None = None,
          block_images: int | None = None, read_ahead: int = 2, progress: ProgressFn | None = None,
          cancel: Any = None, compute_dtype: ComputeDtype = "float32") -> tuple[np.ndarray, np.ndarray, str]:
    """Best score ``(N,)`` float32 and best window position ``(N, 2)`` int32 (row, col) of every image."""
    held = isinstance(array, FeatureIndex)
    dev = array.device if held and device is None else resolve_device(device)
    prep = _prepare(query, dev, _torch_dtype(compute_dtype))
    scorer = _BlockScorer(prep, dev, query.channels)
    n = int(array.shape[0])
    scores_n = np.zeros(n, dtype=np.float32)
    pos_n = np.zeros(n, dtype=np.int64)
    step = 1 if held else read_images(array, block_images)
    stop_event = threading.Event()
    blocks = _blocks(array, scale, dev, step, read_ahead, stop_event)
    try:
        for block in blocks:
            if cancel is not None and cancel.is_set():
                raise SearchCancelled(f"search cancelled after {block.start} of {n} images")
            best, pos = scorer(block)
            stop = block.start + block.images
            scores_n[block.start:stop] = best.cpu().numpy()
            pos_n[block.start:stop] = pos.cpu().numpy()
            if progress is not None:
                progress(stop, n)
    finally:
        stop_event.set()
        blocks.close()
    pw = query.grid_hw[1] - query.box[3] + 1
    rc_n2 = np.stack([pos_n // pw, pos_n % pw], axis=1).astype(np.int32)
    return scores_n, rc_n2, str(dev)
