"""Locations and references on feature grids: which cell a point falls in, the vector at a
cell, the mean vector under a soft mask, one channel's map.

Locations are synchronised between layers and images through normalised coordinates:
a click at pixel ``(x, y)`` of a ``W x H`` image lands in cell
``(floor(y / H * grid_h), floor(x / W * grid_w))`` of any grid, so "the same place"
is selected in a 56x56 and a 7x7 layer, and in images of different sizes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from skimage.measure import points_in_poly

from .metrics import _to_numpy

__all__ = ["pixel_to_cell", "cell_center_px", "reference_vector", "mask_to_grid", "draw_region", "region_reference",
           "channel_map"]


# --------------------------------------------------------------------------- locations


def pixel_to_cell(xy_px: tuple[float, float], image_wh: tuple[int, int],
                  grid_hw: tuple[int, int]) -> tuple[int, int]:
    """The feature cell ``(row, col)`` of a ``grid_hw`` layer under image point ``(x, y)``.

    Coordinates are continuous pixels (``0 ≤ x ≤ W``, ``0 ≤ y ≤ H``; pixel ``i`` spans
    ``[i, i+1)``). The point is normalised (``u = x / W``, ``v = y / H``), so the same
    place maps consistently into layers of any resolution and images of any size.

    >>> [pixel_to_cell((200, 10), (224, 224), (g, g)) for g in (56, 28, 14, 7)]
    [(2, 50), (1, 25), (0, 12), (0, 6)]
    """
    x, y = float(xy_px[0]), float(xy_px[1])
    width, height = image_wh
    if width <= 0 or height <= 0 or grid_hw[0] <= 0 or grid_hw[1] <= 0:
        raise ValueError(f"image_wh {image_wh} and grid_hw {grid_hw} must be positive")
    if not (0.0 <= x <= width and 0.0 <= y <= height):
        raise ValueError(
            f"point (x={x:g}, y={y:g}) lies outside the {width}x{height} image; expected 0 ≤ x ≤ {width} "
            f"and 0 ≤ y ≤ {height}. If the image is shown resized, pass the displayed size as image_wh."
        )
    row = min(int(math.floor(y / height * grid_hw[0])), grid_hw[0] - 1)
    col = min(int(math.floor(x / width * grid_hw[1])), grid_hw[1] - 1)
    return row, col


def cell_center_px(cell_rc: tuple[int, int], grid_hw: tuple[int, int],
                   image_wh: tuple[int, int]) -> tuple[float, float]:
    """Pixel coordinates ``(x, y)`` of the centre of cell ``(row, col)`` (inverse of
    :func:`pixel_to_cell`; use it to draw a marker).

    >>> cell_center_px((0, 6), (7, 7), (224, 224))
    (208.0, 16.0)
    >>> pixel_to_cell(cell_center_px((3, 5), (14, 14), (448, 300)), (448, 300), (14, 14))
    (3, 5)
    """
    _check_cell(cell_rc, grid_hw)
    x = (cell_rc[1] + 0.5) / grid_hw[1] * image_wh[0]
    y = (cell_rc[0] + 0.5) / grid_hw[0] * image_wh[1]
    return float(x), float(y)


def _check_cell(cell_rc: tuple[int, int], grid_hw: tuple[int, int]) -> None:
    row, col = cell_rc
    if not (0 <= row < grid_hw[0] and 0 <= col < grid_hw[1]):
        raise IndexError(
            f"cell (row={row}, col={col}) is outside the {grid_hw[0]}x{grid_hw[1]} feature grid; "
            "map image clicks with pixel_to_cell() to get a valid cell"
        )


# --------------------------------------------------------------------------- references


def reference_vector(feats_hwc: Any, cell_rc: tuple[int, int]) -> np.ndarray:
    """The float32 ``(C,)`` feature vector at cell ``(row, col)`` of ``feats_hwc`` ``(H, W, C)``.

    >>> reference_vector(np.arange(12.0).reshape(2, 2, 3), (1, 0))
    array([6., 7., 8.], dtype=float32)
    """
    feats = _to_numpy(feats_hwc)
    if feats.ndim != 3:
        raise ValueError(f"expected one image's features (H, W, C); got shape {feats.shape}. "
                         "Index the image first, e.g. feats_nhwc[i].")
    _check_cell(cell_rc, feats.shape[:2])
    return feats[cell_rc[0], cell_rc[1]].astype(np.float32)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float64 weights averaging input intervals over each output interval."""
    edges_in = np.arange(n_in + 1) / n_in
    edges_out = np.arange(n_out + 1) / n_out
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(hi - lo, 0.0, None) * n_out


def mask_to_grid(mask_hw: Any, grid_hw: tuple[int, int]) -> np.ndarray:
    """Area-average a soft mask of any resolution (values in [0, 1], bool allowed) onto a
    feature grid → float32 ``grid_hw`` weights in [0, 1].

    >>> mask_to_grid(np.array([[1, 1, 0, 0]] * 2), (1, 2))
    array([[1., 0.]], dtype=float32)
    """
    mask = _to_numpy(mask_hw).astype(np.float64)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W); got shape {mask.shape}")
    if mask.size == 0 or mask.min() < 0 or mask.max() > 1:
        raise ValueError("mask values must lie in [0, 1] (bool, 0/1 or soft weights); rescale it, e.g. mask / 255")
    rows = _area_matrix(mask.shape[0], grid_hw[0])
    cols = _area_matrix(mask.shape[1], grid_hw[1])
    return np.clip(rows @ mask @ cols.T, 0.0, 1.0).astype(np.float32)


def draw_region(region: Any, out_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask of a normalised box ``(x0, y0, x1, y1)`` or polygon ``((x, y), …)``
    (the scenario files' regions) at ``out_hw``: the pixels whose centre lies inside.

    >>> draw_region((0.0, 0.0, 0.5, 1.0), (2, 4)).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0]]
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    if len(region) == 4 and not isinstance(region[0], (tuple, list)):
        x0, y0, x1, y1 = (float(v) for v in region)
        region = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    ys, xs = np.mgrid[0:h, 0:w]
    centres_p2 = np.stack([(xs.ravel() + 0.5) / w, (ys.ravel() + 0.5) / h], axis=1)
    return points_in_poly(centres_p2, np.asarray(region, np.float64)).reshape(h, w)


def region_reference(feats_hwc: Any, mask_hw: Any) -> np.ndarray:
    """Weighted mean float32 ``(C,)`` of ``feats_hwc`` ``(H, W, C)`` under a soft mask.

    ``mask_hw`` may have any resolution (e.g. image pixels); it is area-averaged onto the
    feature grid with :func:`mask_to_grid`.

    >>> feats_hwc = np.arange(8.0).reshape(2, 2, 2)
    >>> region_reference(feats_hwc, np.array([[1, 0], [1, 0]]))
    array([2., 3.], dtype=float32)
    """
    feats = _to_numpy(feats_hwc)
    if feats.ndim != 3:
        raise ValueError(f"expected one image's features (H, W, C); got shape {feats.shape}")
    weights_hw = mask_to_grid(mask_hw, feats.shape[:2]).astype(np.float64)
    total = weights_hw.sum()
    if total <= 1e-12:
        raise ValueError("the region mask is empty: draw a region first, or click a cell and use reference_vector()")
    flat_pc = feats.reshape(-1, feats.shape[2]).astype(np.float64)
    return (weights_hw.reshape(-1) @ flat_pc / total).astype(np.float32)


def channel_map(feats_hwc: Any, channel: int) -> np.ndarray:
    """One channel of ``feats_hwc`` ``(H, W, C)`` as a float32 ``(H, W)`` map (IFeaLiD's
    channel view). Negative indices count from the end.

    >>> channel_map(np.arange(8.0).reshape(2, 2, 2), -1)
    array([[1., 3.],
           [5., 7.]], dtype=float32)
    """
    feats = _to_numpy(feats_hwc)
    if feats.ndim != 3:
        raise ValueError(f"expected one image's features (H, W, C); got shape {feats.shape}")
    n_channels = feats.shape[2]
    if not -n_channels <= int(channel) < n_channels:
        raise IndexError(f"channel {channel} does not exist; this layer has channels 0..{n_channels - 1}")
    return feats[:, :, int(channel)].astype(np.float32)
