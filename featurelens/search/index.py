"""Features laid out for search: blocks of images stored cell-major, with each cell's squared norm.

The engine multiplies the query with one grid cell of many images at a time (see
:mod:`featurelens.search.engine`), so a block keeps cell ``l`` of its ``S`` images as ``S``
contiguous rows: ``feats_lsc`` is ``(H·W, S, C)``. The squared norms ``sq_ls`` do not depend on
the query: a :class:`FeatureIndex` (:func:`load_features`) computes them once; for blocks streamed
from an array or a Zarr cache the scorer computes them while it reads the rows for the products.
"""

from __future__ import annotations

import bisect
import functools
import operator
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from ..models import resolve_device
from . import kernels
from .errors import SearchError

__all__ = ["CellBlock", "FeatureIndex", "cell_block", "load_features", "pass_images"]

READ_BYTES = 16 * 2**20  # stored bytes read at a time (in memory or read ahead): 4 cache chunks


def pass_images(channels: int, device: torch.device, cells: int = 1) -> int:
    """Images scored per pass: on the CPU, one cell of them (``images × C`` float32) stays in the
    core's cache (~1.25 MB: 256 images at C = 1280, measured fastest among 128/192/256); with
    ``cells`` (H·W, for a held block), few enough that 16 dot products per cell fit in 16 MB."""
    per_pass = 4096 if device.type != "cpu" else min(4096, max(256, 327_680 // max(1, channels)))
    return int(max(1, min(per_pass, 2**22 // (16 * cells))))


@dataclass(frozen=True, eq=False)
class CellBlock:
    """Images ``start : start + S`` of a feature array, cell-major."""

    start: int
    feats_lsc: torch.Tensor          # (H·W, S, C) as stored (float16/32/bfloat16, int8): cell-major, or a view of (S, H, W, C)
    sq_ls: torch.Tensor | None       # (H·W, S) float32: squared norm of each cell's vector (scale applied), or None
    scale_ls: torch.Tensor | None    # (H·W, S) float32 per-cell scales of int8 features, else None

    @property
    def images(self) -> int:
        return int(self.feats_lsc.shape[1])

    @property
    def cell_major(self) -> bool:
        """Stored cell-major (a :class:`FeatureIndex`'s blocks); else a view of image-order rows."""
        return self.feats_lsc.is_contiguous()

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, bool]:
        """Images ``start:stop`` as ``(R, C)`` rows in memory order (a view, except for part of a
        cell-major block), and whether that order is cell-major (else image-major)."""
        c = self.feats_lsc.shape[-1]
        if self.cell_major:
            return self.feats_lsc[:, start:stop].reshape(-1, c), True
        return self.feats_lsc.transpose(0, 1)[start:stop].reshape(-1, c), False

    def to(self, device: torch.device, non_blocking: bool = False) -> "CellBlock":
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return CellBlock(self.start, move(self.feats_lsc), move(self.sq_ls), move(self.scale_ls))

    def pin_memory(self) -> "CellBlock":
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return CellBlock(self.start, pin(self.feats_lsc), pin(self.sq_ls), pin(self.scale_ls))


def cell_block(start: int, block_shwc: torch.Tensor, scale_shw: torch.Tensor | None = None, *,
               cell_major: bool = True) -> CellBlock:
    """``(S, H, W, C)`` images (+ ``(S, H, W)`` int8 scales) → a :class:`CellBlock` in the stored dtype.

    ``cell_major=True`` (a :class:`FeatureIndex`): copied cell-major, with the squared norms.
    ``cell_major=False`` (blocks streamed once): a view, no norms — the scorer multiplies every
    cell with every query row in memory order and computes the norms while it reads the rows."""
    s, h, w, c = block_shwc.shape
    scale_ls = None if scale_shw is None else scale_shw.to(torch.float32).reshape(s, h * w).t().contiguous()
    view_lsc = block_shwc.reshape(s, h * w, c).transpose(0, 1)
    if not cell_major:
        return CellBlock(start, view_lsc, None, scale_ls)
    feats_lsc = view_lsc.contiguous()
    sq_ls = _squared_norms(feats_lsc)
    if scale_ls is not None:
        sq_ls *= scale_ls * scale_ls
    return CellBlock(start, feats_lsc, sq_ls, scale_ls)


def _squared_norms(feats_lsc: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """``(L, S, C)`` any dtype → ``(L, S)`` float32 squared norms, ``rows`` vectors converted at a time
    (2× faster than ``vector_norm(..., dtype=float32)`` on float16, which is slow on the CPU)."""
    flat_rc = feats_lsc.reshape(-1, feats_lsc.shape[-1])
    if flat_rc.dtype == torch.float32 or flat_rc.device.type != "cpu":
        values = flat_rc if flat_rc.is_floating_point() else flat_rc.to(torch.float32)
        return torch.linalg.vector_norm(values, dim=-1, dtype=torch.float32).square_().view(feats_lsc.shape[:2])
    out = torch.empty(flat_rc.shape[0], dtype=torch.float32)
    for start in range(0, flat_rc.shape[0], rows):
        torch.linalg.vector_norm(flat_rc[start:start + rows].to(torch.float32), dim=-1, out=out[start:start + rows])
    return out.square_().view(feats_lsc.shape[:2])


def as_tensor(array: Any) -> torch.Tensor:
    """A numpy array or torch tensor as a tensor (no copy where possible)."""
    if isinstance(array, torch.Tensor):
        return array
    with warnings.catch_warnings():  # read-only numpy arrays (e.g. memory maps): we never write
        warnings.simplefilter("ignore", UserWarning)
        return torch.as_tensor(np.asarray(array))


def is_zarr(array: Any) -> bool:
    """A zarr array, or a subclass such as the caches' integrity-checked arrays (read in chunks, never whole)."""
    return any(cls.__module__.startswith("zarr") for cls in type(array).__mro__)


def itemsize(array: Any) -> int:
    """Bytes per element of a numpy, zarr or torch array."""
    return array.element_size() if isinstance(array, torch.Tensor) else np.dtype(array.dtype).itemsize


def read_images(array: Any, block_images: int | None = None) -> int:
    """Images read at a time: ``block_images``, or a whole number of zarr chunks of about
    :data:`READ_BYTES` stored bytes (each chunk decoded once)."""
    if block_images is not None:
        if block_images < 1:
            raise SearchError(f"block_images must be at least 1, got {block_images}")
        return int(block_images)
    per_image = max(1, int(np.prod(array.shape[1:])) * itemsize(array))
    n = max(1, READ_BYTES // per_image)
    if is_zarr(array):
        chunk = int(array.chunks[0])
        n = max(chunk, n // chunk * chunk)
    return n


@dataclass(frozen=True, eq=False)
class FeatureIndex:
    """A whole ``(N, H, W, C)`` feature array held on one device, laid out for repeated search.

    Same values and dtype as the array (float16 for caches; int8 keeps its scales), one copy,
    plus ``N·H·W`` float32 squared norms. Made by :func:`load_features`; pass it to
    :func:`~featurelens.search.search_features` in place of the array. ``index[i]`` is image
    ``i``'s ``(H, W, C)`` features (int8 times its scales).
    """

    blocks: tuple[CellBlock, ...]
    shape: tuple[int, int, int, int]
    dtype: torch.dtype
    device: torch.device

    def __len__(self) -> int:
        return self.shape[0]

    @functools.cached_property
    def _starts(self) -> list[int]:
        return [block.start for block in self.blocks]

    def __getitem__(self, index: int) -> torch.Tensor:
        n, h, w, c = self.shape
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"image {index} is out of range for {n} images")
        index %= n
        block = self.blocks[bisect.bisect_right(self._starts, index) - 1]
        row = index - block.start
        cells = block.feats_lsc[:, row]
        values = cells if block.scale_ls is None else cells.to(torch.float32) * block.scale_ls[:, row, None]
        return values.reshape(h, w, c)

    def __iter__(self) -> Iterator[CellBlock]:
        return iter(self.blocks)


def load_features(array: Any, device: str | torch.device | None = None, *, scale_nhw: Any = None,
                  block_images: int | None = None) -> FeatureIndex:
    """Read a whole ``(N, H, W, C)`` feature array (zarr, numpy, torch) onto ``device`` once, to
    search it many times without reading or rearranging it again (e.g. held by ``st.cache_resource``).

    Args:
        array: the features, float (float16 for caches) or int8 with ``scale_nhw``.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``; default the first available in that order.
        scale_nhw: ``(N, H, W)`` per-cell scales of int8 features.
        block_images: images per block (default :func:`pass_images` for the grid: what one pass scores).

    Returns:
        a :class:`FeatureIndex` (dtype unchanged).
    """
    dev = resolve_device(device)
    n, h, w, c = (int(v) for v in array.shape)
    dtype = as_tensor(array[:0]).dtype
    if dtype == torch.int8 and scale_nhw is None:
        raise SearchError("int8 features need scale_nhw (one scale per cell): pass the scales from quantize_int8")
    if scale_nhw is not None and tuple(scale_nhw.shape) != (n, h, w):
        raise SearchError(f"scale_nhw has shape {tuple(scale_nhw.shape)}, expected {(n, h, w)} (one per cell)")
    if block_images is not None and block_images < 1:
        raise SearchError(f"block_images must be at least 1, got {block_images}")
    step = pass_images(c, dev, h * w) if block_images is None else int(block_images)
    blocks = []
    for start in range(0, n, step):  # Zarr chunks across a block boundary are decoded twice (once, when held)
        scales = None if scale_nhw is None else as_tensor(scale_nhw[start:start + step]).to(dev)
        blocks.append(cell_block(start, as_tensor(array[start:start + step]).to(dev), scales))
    if dev.type == "cpu" and kernels.reads(dtype):
        kernels.compile_for(dtype)
    return FeatureIndex(tuple(blocks), (n, h, w, c), dtype, dev)
