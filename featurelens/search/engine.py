"""The scoring engine: the best VFS window of every image, a few matrix products per block of images.

For a query box of size ``(bh, bw)`` holding ``K`` mask cells ``k`` at offsets ``o_k`` with weights
``m_k``, and ``q = f_query[box] ⊙ m``, the VFS score of the window at ``u`` is::

    cos(q, d_u) = Σ_k m_k² <f_query[box + o_k], f[u + o_k]> / (|q| · sqrt(Σ_k m_k² |f[u + o_k]|²))

**Two ways to get the dot products.** Both end with the window sums: dot products and the
cells' squared norms (``m_k²``-weighted) summed over the mask cells, one shifted sum per cell.

* *All cells × all query rows* (:meth:`_BlockScorer._all_cells`): one product ``(K, C) @ (C, R)``
  over the block's rows in memory order, ``H·W·K·C`` multiply-adds per image. Blocks streamed
  from an array or a Zarr cache go this way, in image order, with no copy.
* *Per cell, only the rows its windows use* (:meth:`_BlockScorer._per_cell`): grid cell ``l``
  takes part in window ``u`` as mask cell ``k`` only when ``l = u + o_k`` for a valid window, so it
  needs ``K_l ≤ K`` query rows. A :class:`~featurelens.search.index.FeatureIndex` stores cell ``l``
  of ``S`` images as ``S`` contiguous rows, so one product ``(K_l, C) @ (C, S)`` per cell gives
  them, and ``index_add_`` adds each row into its window: ``P·K·C`` multiply-adds per image
  (``P`` windows). For a 4×4 box on a 7×7 grid that is 256·C instead of 784·C, for the benchmark's
  free-form 5×5 box 162·C instead of 882·C. It is used where it does at most 75% of the other's
  rows (CPU kernels; measured on 7×7 to 56×56 grids); with torch's products at most 70% on grids
  up to 16×16 (past that one ``mm`` call per cell costs more than it saves).

Windows whose norm is 0 score 0 (never NaN).

**Products on the CPU.** With the default ``compute_dtype="float32"`` the products come from
:mod:`~featurelens.search.kernels`: float16 (or int8) rows are read as stored and converted in
registers, sums in float32. torch would need a float32 copy of every row first (31% of a 4×4
search) and MKL's products with a few query rows run far below the core's peak. With
``benchmarks/bench_search.py`` (7×7×1280 float16 held by :func:`~featurelens.search.load_features`,
N = 5,000 and 20,000, one thread, AMD EPYC with AVX-512) a search took 1.07–1.18× (1×1 mask),
1.39–1.45× (2×2), 1.66–1.71× (4×4) and 1.37–1.39× (free-form) the time of one bfloat16
matrix-vector product over the cache's bytes; with the float32 copy and ``torch.mm`` 1.3×, 2.0×,
2.3–2.4× and 1.9×, and with one product of every cell with every query row 1.7–2.3×, 2.6–2.8×,
3.9–4.3× and 4.5–4.7×. Rows the kernels do not read (bfloat16), accelerators and
``compute_dtype="bfloat16"`` use ``torch.mm``.

The alternative ``"bfloat16"`` (rows rounded to bfloat16, ``torch.mm`` on bfloat16 tensors, fp32
accumulation inside oneDNN) was measured with ``benchmarks/bench_search.py``: on an AMD EPYC with
AVX2 only (no native bf16 kernel in oneDNN) the whole search took 4–5× longer than float32; on an
AMD EPYC with avx512-bf16 the bare bfloat16 product was 2.1× faster than float32 for a 16-row
query, but rows must still be converted (float16 → float32 → bfloat16: torch's direct float16 →
bfloat16 copy is 4.6× slower than both steps): the whole search took about as long as float32
with ``torch.mm``, and 1.6–2× as long as the kernels.
It also changes the ranking (bfloat16 keeps 8 mantissa bits and, on the CPU, the product comes back
rounded to bfloat16, so scores closer than ~1e-3 swap), while float32 reproduced float64's top-10
exactly, order included, for every mask and size measured. So float32 is the default and the CPU
path; ``"bfloat16"`` stays an option for GPUs, to be checked the same way before use.

**Shapes of the products (CPU, one thread, measured).** Passes of ``S`` = 256 images (one cell of
them, 1.25 MB of float32 at C = 1280, was fastest among 128, 192 and 256 for torch's products).
For ``torch.mm`` query rows are padded with zeros to 4, 8, 12 or 16 (``K`` = 3 takes as long as 4,
5–7 as 8, …); the kernels take 4 rows at a time and pad only 3 left-over rows to 4.
Thousands of small parallel regions make the multi-threaded CPU path sensitive to a busy core
(the threads wait for each other); on a shared machine ``torch.set_num_threads(1)`` is steadier.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch

from ..models import resolve_device
from . import kernels
from .errors import SearchCancelled, SearchError
from .index import CellBlock, FeatureIndex, as_tensor, cell_block, pass_images, read_images
from .query import Query

__all__ = ["ComputeDtype", "ProgressFn"]

ProgressFn = Callable[[int, int], None]
ComputeDtype = Literal["float32", "bfloat16"]
_DOTS_FLOATS = 2**22  # at most 16 MB of dot products (rows × images) per pass: large grids take fewer images
_CONVERT_ROWS = 1024  # rows converted to float32 at a time for torch's all-cells product: 5 MB at C = 1280


def _torch_dtype(compute_dtype: str) -> torch.dtype:
    if compute_dtype not in ("float32", "bfloat16"):
        raise SearchError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
    return torch.float32 if compute_dtype == "float32" else torch.bfloat16


def _scaled(sq: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
    """Squared norms of stored rows, times their int8 scales squared when given (same shape)."""
    return sq if scales is None else sq * scales.square()


def _uses_kernels(device: torch.device, dtype: torch.dtype, stored: torch.dtype, channels: int,
                  mask_cells: int) -> bool:
    """float32 products on the CPU come from :mod:`~featurelens.search.kernels` (which read features
    stored as ``stored``) for wide features or few mask cells; else from torch. Measured (one
    thread, 7×7 to 56×56 grids, C = 24 to 1280, masks of 1 to 144 cells): the kernels were faster in
    every case at C = 1280 and with up to 4 mask cells at any C (1×1: 1.7–3.2× at C ≤ 128); at
    C ≤ 128 with 16 or more cells MKL's products were as fast or up to 2× faster (the kernels sum
    each pair of rows across the vector, which short rows do not repay)."""
    return (device.type == "cpu" and dtype == torch.float32 and kernels.reads(stored)
            and (channels >= 256 or mask_cells <= 4))


def _padded_k(k: int, for_kernels: bool) -> int:
    """Rows of a query matrix, zero rows added where that is as fast (measured): for torch's
    products ``k`` up to 2, else the next multiple of 4; for the CPU kernels, which take 4 rows at a
    time and the rest one by one, 3 left over become 4 (3 single rows cost more than a block of 4)."""
    if for_kernels:
        return k + 1 if k % 4 == 3 else k
    return k if k <= 2 else -(-k // 4) * 4


@dataclass(frozen=True, eq=False)
class _Cell:
    """One grid cell's share of the query: its query rows and where their dot products go."""

    cell: int                # l = row · W + col on the grid
    q_kc: torch.Tensor       # (K_l', C) compute dtype: rows m_k² · f_query[box + o_k] for the k it serves, zero-padded
    row: int                 # first of its K_l' rows among the block's dot products


@dataclass(frozen=True, eq=False)
class _Prepared:
    """The query as the engine uses it, on the search device."""

    q_kc: torch.Tensor           # (K', C) compute dtype: row k is m_k² · f_query[box + o_k]; K' >= K (zero rows)
    cells: tuple[_Cell, ...]     # per grid cell, only the rows its windows use
    q_rc: torch.Tensor           # (Σ_l K_l', C): the cells' rows, one after another
    row_cell: torch.Tensor       # (Σ_l K_l',) int64: the grid cell of each of those rows
    window_r: torch.Tensor       # (Σ_l K_l',) int64: the window each cell row adds to (P: none, a padding row)
    offsets_k: tuple[tuple[int, int], ...]  # o_k = (i_k, j_k) inside the box
    m2_k: tuple[float, ...]      # m_k²
    grid_hw: tuple[int, int]     # (H, W)
    windows_hw: tuple[int, int]  # (ph, pw): window positions; P = ph · pw
    q_norm: float
    dtype: torch.dtype           # the products' dtype
    kernels: bool                # products by the CPU kernels (else torch)

    @property
    def cell_rows(self) -> int:
        """Σ_l K_l': query rows multiplied per image by the per-cell products."""
        return int(self.window_r.shape[0])

    @property
    def per_cell_pays(self) -> bool:
        """Per-cell products where they do at most 75% of the all-cells product's rows (CPU kernels,
        measured on 7×7 to 56×56 grids); with torch's products at most 70%, on grids up to 16×16
        (past that one call per cell costs more than it saves)."""
        h, w = self.grid_hw
        rows = self.cell_rows / (h * w * self.q_kc.shape[0])
        return rows <= 0.75 if self.kernels else h * w <= 256 and rows <= 0.7


def _prepare(query: Query, device: torch.device, dtype: torch.dtype, stored: torch.dtype) -> _Prepared:
    """The query rows (products in ``dtype``, with features stored as ``stored``), each grid cell's
    share of them, and the window each cell row adds to."""
    r, c, bh, bw = query.box
    h, w = query.grid_hw
    ph, pw = h - bh + 1, w - bw + 1
    mask_hw = query.box_mask_hw.astype(np.float64)
    offsets = [(i, j) for i in range(bh) for j in range(bw) if mask_hw[i, j] > 0]
    m2_k = np.array([mask_hw[i, j] ** 2 for i, j in offsets])
    use_kernels = _uses_kernels(device, dtype, stored, query.channels, len(offsets))
    q_kc = np.zeros((_padded_k(len(offsets), use_kernels), query.channels), np.float32)
    q_kc[:len(offsets)] = np.stack([query.feats_hwc[r + i, c + j].astype(np.float64) for i, j in offsets]) * m2_k[:, None]
    served: list[list[tuple[int, int]]] = [[] for _ in range(h * w)]   # per cell: (k, window p) pairs
    for k, (i, j) in enumerate(offsets):
        for u in range(ph):
            for v in range(pw):
                served[(u + i) * w + (v + j)].append((k, u * pw + v))
    to_device = lambda a: torch.from_numpy(a).to(device=device, dtype=dtype)  # noqa: E731
    cells, window_r, row_cell = [], [], []
    for cell, pairs in enumerate(served):
        if not pairs:
            continue
        rows_kc = np.zeros((_padded_k(len(pairs), use_kernels), query.channels), np.float32)
        rows_kc[:len(pairs)] = q_kc[[k for k, _ in pairs]]
        cells.append(_Cell(cell, to_device(rows_kc), len(window_r)))
        window_r += [p for _, p in pairs] + [ph * pw] * (len(rows_kc) - len(pairs))
        row_cell += [cell] * len(rows_kc)
    as_long = lambda v: torch.tensor(v, dtype=torch.int64, device=device)  # noqa: E731
    return _Prepared(to_device(q_kc), tuple(cells), torch.cat([c.q_kc for c in cells]), as_long(row_cell),
                     as_long(window_r), tuple(offsets), tuple(float(v) for v in m2_k), (h, w), (ph, pw), query.norm,
                     dtype, use_kernels)


class _BlockScorer:
    """Scores blocks → best score and best window position of each image, by per-cell products
    (cell-major blocks where :attr:`_Prepared.per_cell_pays`) or one product of all cells with all
    query rows and shifted sums (the rest: image-order blocks, and masks where per-cell saves little)."""

    def __init__(self, prep: _Prepared, device: torch.device, channels: int):
        self.prep = prep
        self.device = device
        self.channels = channels
        h, w = prep.grid_hw
        self.cell_step = min(pass_images(channels, device), max(1, _DOTS_FLOATS // max(1, prep.cell_rows)))
        self.all_step = max(1, _DOTS_FLOATS // (h * w * prep.q_kc.shape[0]))
        self._width = -1           # images of the per-cell pass the buffers below are for
        self._dots_rs: torch.Tensor | None = None          # (Σ_l K_l', width) float32: row r = a cell's query row
        self._outs: list[torch.Tensor] = []                # each cell's rows of it
        self._buf_rc: torch.Tensor | None = None           # rows converted for the product (CPU), float32
        if prep.kernels:  # the per-cell arguments of kernels.cells_dots
            self._q_rc = prep.q_rc.numpy()
            self._cell_i = np.array([cell.cell for cell in prep.cells], np.int64)
            self._row_start = np.array([cell.row for cell in prep.cells], np.int64)
            self._row_stop = self._row_start + [cell.q_kc.shape[0] for cell in prep.cells]

    def __call__(self, block: CellBlock) -> tuple[torch.Tensor, torch.Tensor]:
        """A block of ``S`` images → ``(best_s float32, position_s int64)``; position ``p`` is window
        row ``p // pw``, col ``p % pw``. Images are scored a pass at a time (at most
        :func:`pass_images`, and at most :data:`_DOTS_FLOATS` dot products)."""
        per_cell = self.prep.per_cell_pays and block.cell_major and block.sq_ls is not None
        step = self.cell_step if per_cell else self.all_step
        bests, positions = [], []
        for start in range(0, block.images, step):
            stop = min(block.images, start + step)
            num_ps, den_ps = (self._per_cell if per_cell else self._all_cells)(block, start, stop)
            score = num_ps / (den_ps.sqrt() * self.prep.q_norm)
            best, pos = torch.where(den_ps > 0, score, torch.zeros_like(score)).clamp_(-1.0, 1.0).max(dim=0)
            bests.append(best)
            positions.append(pos)
        return torch.cat(bests), torch.cat(positions)

    def _per_cell(self, block: CellBlock, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window dot products and squared norms ``(P, S)`` of a cell-major block (with its squared
        norms), one product per grid cell."""
        prep, width = self.prep, stop - start
        self._cell_buffers(width)
        scale_ls = None if block.scale_ls is None else block.scale_ls[:, start:stop]
        if self._reads(block.feats_lsc):
            kernels.cells_dots(kernels.stored_view(block.feats_lsc), start, stop, self._cell_i, self._row_start,
                               self._row_stop, self._q_rc, self._dots_rs.numpy())
            if scale_ls is not None:
                self._dots_rs *= scale_ls.index_select(0, prep.row_cell)
        else:
            for cell, out in zip(prep.cells, self._outs):
                self._dots(cell.q_kc, block.feats_lsc[cell.cell, start:stop], out, None)
                if scale_ls is not None:
                    out *= scale_ls[cell.cell]
        ph, pw = prep.windows_hw
        num_ps = torch.zeros(ph * pw + 1, width, dtype=torch.float32, device=self.device)
        num_ps = num_ps.index_add_(0, prep.window_r, self._dots_rs)[:-1]
        sq_ls = block.sq_ls[:, start:stop]
        return num_ps, self._window_sums([sq_ls.view(*prep.grid_hw, width)] * len(prep.m2_k), prep.m2_k, False)

    def _all_cells(self, block: CellBlock, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window dot products and squared norms ``(P, S)`` from one product of every cell with every
        query row, rows taken in memory order, then one shifted sum per mask cell in that order."""
        prep, width = self.prep, stop - start
        h, w = prep.grid_hw
        rows_rc, cell_major = block.rows(start, stop)
        dots_kr = torch.empty(prep.q_kc.shape[0], rows_rc.shape[0], dtype=torch.float32, device=self.device)
        sq_r = None if block.sq_ls is not None else torch.empty(rows_rc.shape[0], dtype=torch.float32,
                                                                 device=self.device)
        if self._reads(rows_rc):
            kernels.rows_dots(kernels.stored_view(rows_rc), prep.q_kc.numpy(), dots_kr.numpy(),
                              None if sq_r is None else sq_r.numpy())
        else:
            for first in range(0, rows_rc.shape[0], _CONVERT_ROWS):
                last = min(rows_rc.shape[0], first + _CONVERT_ROWS)
                self._dots(prep.q_kc, rows_rc[first:last], dots_kr[:, first:last],
                           None if sq_r is None else sq_r[first:last])
        grid = (-1, h, w, width) if cell_major else (-1, width, h, w)   # the rows' memory order
        scale = None if block.scale_ls is None else block.scale_ls[:, start:stop]
        if scale is not None:
            dots_kr = (dots_kr.view(-1, h * w, width) * scale if cell_major
                       else dots_kr.view(-1, width, h * w) * scale.t()).view(dots_kr.shape)
        if sq_r is None:
            sq = block.sq_ls[:, start:stop] if cell_major else block.sq_ls[:, start:stop].t()
        else:
            sq = _scaled(sq_r.view(h * w, width) if cell_major else sq_r.view(width, h * w),
                         None if scale is None else (scale if cell_major else scale.t()))
        dots = dots_kr.view(grid)
        num_ps = self._window_sums(list(dots[:len(prep.m2_k)]), [1.0] * len(prep.m2_k), not cell_major)
        den_ps = self._window_sums([sq.reshape(grid[1:])] * len(prep.m2_k), prep.m2_k, not cell_major)
        return num_ps, den_ps

    def _window_sums(self, grids: list[torch.Tensor], weights: Sequence[float], images_first: bool) -> torch.Tensor:
        """``Σ_k weights[k] · grids[k][u + o_k]`` for every window ``u``: grids ``(H, W, S)``, or
        ``(S, H, W)`` when ``images_first`` (summed in their own memory order) → ``(P, S)``."""
        (ph, pw), width = self.prep.windows_hw, grids[0].shape[0 if images_first else 2]
        out = torch.zeros((width, ph, pw) if images_first else (ph, pw, width), dtype=torch.float32, device=self.device)
        for (i, j), grid, weight in zip(self.prep.offsets_k, grids, weights):
            out.add_(grid[:, i:i + ph, j:j + pw] if images_first else grid[i:i + ph, j:j + pw], alpha=weight)
        return out.view(width, ph * pw).t() if images_first else out.view(ph * pw, width)

    def _cell_buffers(self, width: int) -> None:
        """Per-cell buffers for passes of ``width`` images, kept while the width stays (every full
        pass); the views are made once, not per cell and pass (~5% of a search, measured)."""
        if width == self._width:
            return
        self._width = width
        self._dots_rs = torch.empty(self.prep.cell_rows, width, dtype=torch.float32, device=self.device)
        self._outs = [self._dots_rs[cell.row:cell.row + cell.q_kc.shape[0]] for cell in self.prep.cells]

    def _reads(self, rows: torch.Tensor) -> bool:
        """The CPU kernels take these rows as stored (float16, int8, float32; C-contiguous)."""
        return self.prep.kernels and kernels.reads(rows.dtype) and rows.is_contiguous()

    def _dots(self, q_kc: torch.Tensor, x_rc: torch.Tensor, out_kr: torch.Tensor, sq_r: torch.Tensor | None) -> None:
        """``out_kr = q_kc @ x_rc.T`` by torch, converting the rows ``x_rc`` to the product's dtype;
        with ``sq_r``, also the rows' squared norms."""
        if self.device.type == "cpu" and x_rc.dtype != torch.float32:  # a few rows into a cache-resident buffer
            rows = x_rc.shape[0]
            if self._buf_rc is None or self._buf_rc.shape[0] < rows or self._buf_rc.shape[1] != self.channels:
                self._buf_rc = torch.empty(max(rows, _CONVERT_ROWS), self.channels, dtype=torch.float32)
            x = self._buf_rc[:rows]
            x.copy_(x_rc)  # float16 → float32 is vectorised on the CPU; float16 → bfloat16 directly is not (4.6× slower)
        else:
            x = x_rc.to(torch.float32) if sq_r is not None or self.prep.dtype == torch.float32 else x_rc
        if sq_r is not None:
            torch.linalg.vector_norm(x, dim=1, out=sq_r)
            sq_r.square_()
        if self.prep.dtype == torch.float32:
            torch.mm(q_kc, x.t(), out=out_kr)
        else:  # bfloat16 products come back as bfloat16 on the CPU
            out_kr.copy_(q_kc @ x.to(self.prep.dtype).t())


# --- sources of blocks ---------------------------------------------------------------------


def _read(array: Any, scale: Any, start: int, stop: int) -> CellBlock:
    """Images ``start:stop`` of the features (and scales) as an image-order block (no copy where the
    array is in memory)."""
    return cell_block(start, as_tensor(array[start:stop]), None if scale is None else as_tensor(scale[start:stop]),
                      cell_major=False)


_DONE = object()


def _read_ahead(array: Any, scale: Any, step: int, depth: int, pin: bool,
                stop_event: threading.Event) -> Iterator[CellBlock]:
    """Blocks read (for Zarr: decompressed) in a background thread, at most ``depth`` waiting in a
    bounded queue."""
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
                if not put(block.pin_memory() if pin and block.feats_lsc.device.type == "cpu" else block):
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


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    """``tensor`` is on ``device`` (``cuda`` means the current cuda device, as ``resolve_device`` gives it)."""
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def _blocks(array: Any, scale: Any, device: torch.device, step: int,
            read_ahead: int, stop_event: threading.Event) -> Iterator[CellBlock]:
    """How blocks reach the device: a :class:`FeatureIndex`'s as they are; a tensor's already on the
    accelerator sliced in place; any other array's read ahead in a background thread."""
    if isinstance(array, FeatureIndex):
        for block in array:
            yield block.to(device)
        return
    if isinstance(array, torch.Tensor) and device.type != "cpu" and _on(array, device):
        scales = None if scale is None else as_tensor(scale).to(device)
        for start in range(0, array.shape[0], step):
            yield cell_block(start, array[start:start + step], None if scales is None else scales[start:start + step],
                             cell_major=False)
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
    stored = array.dtype if held else as_tensor(array[:0]).dtype
    prep = _prepare(query, dev, _torch_dtype(compute_dtype), stored)
    scorer = _BlockScorer(prep, dev, query.channels)
    n = int(array.shape[0])
    scores_n = np.zeros(n, dtype=np.float32)
    pos_n = np.zeros(n, dtype=np.int64)
    step = 1 if held else read_images(array, block_images)  # a held index keeps the blocks load_features made
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
