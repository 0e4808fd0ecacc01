"""Query masks on a layer's grid: area-averaging a drawn mask, boxes, and the mask's bounding box.

A grid mask ``mask_hw`` is float32 in [0, 1]: the fraction of each feature cell the user's
region covers. Layouts are in the names (``mask_hw``: rows × columns).

>>> grid_mask(np.ones((4, 4)), (2, 2)).tolist()
[[1.0, 1.0], [1.0, 1.0]]
>>> box_mask((0.0, 0.0, 0.5, 0.25), (2, 4)).tolist()  # x: half the width, y: a quarter
[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
>>> mask_box(np.array([[0, 0, 0], [0, 0.5, 1], [0, 0, 0]]))
(1, 1, 1, 2)
>>> parse_box("0.25, 0, 0.75,0.5")
(0.25, 0.0, 0.75, 0.5)
>>> polygon_mask([(0, 0), (0.5, 0), (0.5, 1), (0, 1)], (2, 4)).tolist()
[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from ..similarity import Region, draw_region, mask_to_grid
from .errors import SearchError

__all__ = ["Region", "box_mask", "grid_mask", "is_box", "load_mask", "mask_box", "mask_from_image", "parse_box",
           "polygon_mask", "region_mask"]

_SUPERSAMPLE = 16   # a polygon is rasterised at 16× the grid (pixel centres inside), then area-averaged


def grid_mask(mask_any_hw: np.ndarray, grid_hw: Sequence[int]) -> np.ndarray:
    """Area-average a mask of any size onto a layer grid.

    Args:
        mask_any_hw: ``(h, w)`` bool, integer 0/1 or float in [0, 1] (e.g. a drawn mask at image size).
        grid_hw: ``(H, W)`` of the layer's feature grid.

    Returns:
        ``(H, W)`` float32 in [0, 1]: the covered fraction of each cell (exact areas, also when
        ``h`` is not a multiple of ``H``).

    Raises:
        SearchError: the mask is not 2-D, has values outside [0, 1], or the grid is not positive.
    """
    mask = np.asarray(mask_any_hw)
    if mask.ndim != 2 or min(mask.shape) < 1:
        raise SearchError(f"a query mask must be 2-D (h, w) and non-empty, got shape {mask.shape}; "
                          "pass one channel of the drawn mask")
    h_out, w_out = (int(v) for v in grid_hw)
    if h_out < 1 or w_out < 1:
        raise SearchError(f"grid_hw must be two positive sizes, got {tuple(grid_hw)}")
    mask = mask.astype(np.float64)
    if not np.all(np.isfinite(mask)) or mask.min() < 0 or mask.max() > 1:
        raise SearchError(f"mask values must lie in [0, 1], got [{mask.min()}, {mask.max()}]; "
                          "divide an 8-bit mask by 255")
    return mask_to_grid(mask, (h_out, w_out))


def box_mask(box_xyxy: Sequence[float], grid_hw: Sequence[int]) -> np.ndarray:
    """A rectangle in normalised image coordinates as a soft grid mask.

    Args:
        box_xyxy: ``(x0, y0, x1, y1)`` with ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``
            (x to the right, y down; fractions of the image width and height).
        grid_hw: ``(H, W)`` of the layer's grid.

    Returns:
        ``(H, W)`` float32: the fraction of each cell inside the box.

    Raises:
        SearchError: the box is not four ordered numbers within [0, 1].
    """
    values = [float(v) for v in box_xyxy]
    if len(values) != 4:
        raise SearchError(f"a box needs four numbers x0,y0,x1,y1, got {len(values)}")
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise SearchError(f"box {tuple(values)} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                          "(normalised image coordinates)")
    h, w = (int(v) for v in grid_hw)
    rows = _cover_1d(y0 * h, y1 * h, h)
    cols = _cover_1d(x0 * w, x1 * w, w)
    return np.outer(rows, cols).astype(np.float32)


def polygon_mask(polygon_xy: Sequence[Sequence[float]], grid_hw: Sequence[int]) -> np.ndarray:
    """A polygon in normalised image coordinates as a soft grid mask ``(H, W)`` float32 in [0, 1]
    (each cell holds the fraction of it inside the polygon).

    Raises:
        SearchError: fewer than 3 points, or a point outside [0, 1].
    """
    points = [tuple(float(v) for v in point) for point in polygon_xy]
    if len(points) < 3 or any(len(p) != 2 for p in points):
        raise SearchError(f"a polygon needs at least 3 points (x, y), got {len(points)}")
    if not all(0.0 <= v <= 1.0 for p in points for v in p):
        raise SearchError(f"polygon points must lie in [0, 1] (fractions of the image), got {points}")
    h, w = (int(v) for v in grid_hw)
    return grid_mask(draw_region(points, (h * _SUPERSAMPLE, w * _SUPERSAMPLE)), (h, w))


def is_box(region: Region) -> bool:
    """Whether ``region`` is a box ``(x0, y0, x1, y1)`` (four numbers) rather than a polygon (pairs)."""
    return all(isinstance(v, (int, float)) for v in region)


def region_mask(region: Region, grid_hw: Sequence[int]) -> np.ndarray:
    """A box (four numbers) or a polygon (pairs) as a soft grid mask."""
    return box_mask(region, grid_hw) if is_box(region) else polygon_mask(region, grid_hw)


def _cover_1d(lo: float, hi: float, n: int) -> np.ndarray:
    """``(n,)`` fraction of each unit cell ``[p, p + 1)`` inside ``[lo, hi)``."""
    cells = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, 1.0)


def mask_box(mask_hw: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(row, col, h, w)`` of the cells where ``mask_hw > 0``.

    Raises:
        SearchError: the mask is empty (no cell above 0).
    """
    rows = np.flatnonzero(np.asarray(mask_hw).max(axis=1) > 0)
    cols = np.flatnonzero(np.asarray(mask_hw).max(axis=0) > 0)
    if rows.size == 0:
        raise SearchError("the query mask is empty (no cell above 0 on the layer grid): draw a larger "
                          "region, or use a finer layer if the region is smaller than one cell")
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def mask_from_image(image: Image.Image | np.ndarray) -> np.ndarray:
    """A mask image (e.g. a PNG painted in any editor) as ``mask_hw`` float32 in [0, 1].

    The alpha channel is used when the image has one and it is not fully opaque (strokes
    painted on a transparent layer); otherwise the grey level (white = inside, black = outside).

    Args:
        image: PIL image of any mode, or ``(h, w)`` / ``(h, w, 3)`` / ``(h, w, 4)`` uint8 array.

    Returns:
        ``(h, w)`` float32 in [0, 1] at the image's size (soft edges kept).

    >>> rgba = np.zeros((2, 3, 4), np.uint8); rgba[0, 1, 3] = 255
    >>> mask_from_image(rgba).tolist()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    if isinstance(image, Image.Image):
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        array = np.asarray(image.convert("RGBA") if has_alpha else image.convert("L"))
    else:
        array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise SearchError(f"a mask image must be 8-bit grey, RGB or RGBA, got an array {array.shape} {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 4 and array[..., 3].min() < 255:
        return array[..., 3].astype(np.float32) / 255.0
    grey = np.asarray(Image.fromarray(array[..., :3]).convert("L")) if array.ndim == 3 else array
    return grey.astype(np.float32) / 255.0


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask image file as ``mask_hw`` float32 in [0, 1] (see :func:`mask_from_image`).

    Raises:
        SearchError: the file is missing or is not an image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return mask_from_image(image)
    except (OSError, ValueError) as exc:
        raise SearchError(f"cannot read the mask image {os.fspath(path)!r} ({type(exc).__name__}: {exc}); pass a "
                          "PNG of the query image's size, white (or opaque) where the region is") from exc


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` (fractions of the image, as typed on a command line) → four floats, checked
    like :func:`box_mask` does.

    Raises:
        SearchError: not four numbers, or not ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``.
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise SearchError(f"a box is four comma-separated fractions x0,y0,x1,y1 (e.g. 0.25,0.25,0.75,0.75), "
                          f"got {text!r}")
    box_mask(values, (1, 1))  # checks the order and range
    return values  # type: ignore[return-value]
