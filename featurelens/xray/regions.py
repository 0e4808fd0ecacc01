"""Named query regions (the scenario's "heart" and "right lung"): normalised polygons or boxes
as soft masks on a layer's grid, and the drawn canvas taking over once the user draws.

A polygon is a sequence of ``(x, y)`` points in fractions of the image (x right, y down; the
patient's right lung is on the image's left on a PA film). It is rasterised at 16× the grid and
area-averaged, so each cell holds the fraction of it inside the polygon.

>>> polygon_mask([(0, 0), (0.5, 0), (0.5, 1), (0, 1)], (2, 4)).tolist()
[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..search import SearchError, box_mask, canvas_mask, grid_mask

__all__ = ["Region", "drawn_or_region_mask", "polygon_mask", "region_mask"]

Region = Sequence[float] | Sequence[Sequence[float]]
"""A box ``(x0, y0, x1, y1)`` or a polygon ``((x, y), …)``, in fractions of the image."""

_SUPERSAMPLE = 16


def polygon_mask(polygon_xy: Sequence[Sequence[float]], grid_hw: Sequence[int]) -> np.ndarray:
    """A polygon in normalised image coordinates as a soft grid mask ``(H, W)`` float32 in [0, 1].

    Raises:
        SearchError: fewer than 3 points, or a point outside [0, 1].
    """
    points = [tuple(float(v) for v in point) for point in polygon_xy]
    if len(points) < 3 or any(len(p) != 2 for p in points):
        raise SearchError(f"a polygon needs at least 3 points (x, y), got {len(points)}")
    if not all(0.0 <= v <= 1.0 for p in points for v in p):
        raise SearchError(f"polygon points must lie in [0, 1] (fractions of the image), got {points}")
    h, w = (int(v) for v in grid_hw)
    canvas = Image.new("L", (w * _SUPERSAMPLE, h * _SUPERSAMPLE), 0)
    # PIL fills the pixels whose centre is inside: pixel i's centre is at i + 0.5 in image coordinates
    ImageDraw.Draw(canvas).polygon([(x * w * _SUPERSAMPLE - 0.5, y * h * _SUPERSAMPLE - 0.5) for x, y in points],
                                   fill=255)
    return grid_mask(np.asarray(canvas, np.float32) / 255.0, (h, w))


def region_mask(region: Region, grid_hw: Sequence[int]) -> np.ndarray:
    """A box (four numbers) or a polygon (pairs) as a soft grid mask."""
    values = list(region)
    if values and all(isinstance(v, (int, float)) for v in values):
        return box_mask(values, grid_hw)
    return polygon_mask(values, grid_hw)


def drawn_or_region_mask(canvas_rgba_hw4: np.ndarray | None, grid_hw: Sequence[int],
                         region: Region | None = None) -> np.ndarray:
    """The drawn canvas as a grid mask once anything is drawn on it; before that, ``region``.

    Raises:
        SearchError: nothing drawn and no region.
    """
    drawn = canvas_rgba_hw4 is not None and bool(np.asarray(canvas_rgba_hw4)[..., 3].any())
    if drawn or region is None:
        return canvas_mask(canvas_rgba_hw4, grid_hw)
    return region_mask(region, grid_hw)
