"""What search pages draw: a drawn canvas as a query mask, matched windows on thumbnails.

>>> rgba = np.zeros((40, 60, 4), np.uint8); rgba[0:20, 0:30, 3] = 255   # top-left quarter drawn
>>> canvas_mask(rgba, (2, 2)).tolist()
[[1.0, 0.0], [0.0, 0.0]]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from .errors import SearchError
from .masks import Region, grid_mask, region_mask

__all__ = ["canvas_mask", "drawn_or_region_mask", "draw_window", "grouped_scores", "mask_outline", "top_overlap"]


def canvas_mask(canvas_rgba_hw4: np.ndarray | None, grid_hw: Sequence[int]) -> np.ndarray:
    """A drawing canvas's pixels → the soft query mask on a layer grid.

    Args:
        canvas_rgba_hw4: ``(h, w, 4)`` RGBA of the strokes only (the image behind the canvas
            is not part of it); a pixel is drawn where alpha > 0. The canvas must show the whole
            image stretched to it, so canvas fractions are image fractions.
        grid_hw: ``(H, W)`` of the layer grid.

    Returns:
        ``(H, W)`` float32 in [0, 1]: the drawn fraction of each cell.

    Raises:
        SearchError: nothing was drawn, or the array is not ``(h, w, 4)``.
    """
    if canvas_rgba_hw4 is None:
        raise SearchError("nothing drawn yet: paint over the region you want to find")
    rgba = np.asarray(canvas_rgba_hw4)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise SearchError(f"a canvas image must be (h, w, 4) RGBA, got shape {rgba.shape}")
    drawn_hw = rgba[..., 3] > 0
    if not drawn_hw.any():
        raise SearchError("nothing drawn yet: paint over the region you want to find")
    return grid_mask(drawn_hw, grid_hw)


def drawn_or_region_mask(canvas_rgba_hw4: np.ndarray | None, grid_hw: Sequence[int],
                         region: Region | None = None) -> np.ndarray:
    """The drawn strokes as a grid mask, or — before anything is drawn — the preset's region
    (a box ``x0, y0, x1, y1`` or a polygon, in fractions). Raises :class:`SearchError` when there
    is neither."""
    drawn = canvas_rgba_hw4 is not None and bool(np.asarray(canvas_rgba_hw4)[..., 3].any())
    if drawn or region is None:
        return canvas_mask(canvas_rgba_hw4, grid_hw)
    return region_mask(region, grid_hw)


def draw_window(image_rgb: Image.Image, box_xyxy_px: Sequence[float], color: str = "#ffd400",
                width: int | None = None) -> Image.Image:
    """A copy of ``image_rgb`` with a rectangle (a matched window) drawn with a dark outline,
    visible on light and dark photos. ``box_xyxy_px``: ``(x0, y0, x1, y1)`` in pixels."""
    out = image_rgb.convert("RGB").copy()
    width = width or max(2, round(max(out.size) / 64))
    x0, y0, x1, y1 = (float(v) for v in box_xyxy_px)
    draw = ImageDraw.Draw(out)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline="black", width=width + 2)
    draw.rectangle((x0 + 1, y0 + 1, x1 - 2, y1 - 2), outline=color, width=width)
    return out


def mask_outline(image_rgb: Image.Image, mask_hw: np.ndarray, color: tuple[int, int, int] = (255, 212, 0),
                 dim: float = 0.55) -> Image.Image:
    """The query image with everything outside the mask dimmed and the mask's cells tinted,
    so the region that was searched is plain on a projector.

    Args:
        image_rgb: the query image.
        mask_hw: ``(H, W)`` soft grid mask in [0, 1] (upsampled to the image by nearest cells).
        color: the tint of masked cells.
        dim: how much to darken outside the mask (0: not at all, 1: black).
    """
    image = image_rgb.convert("RGB")
    weight = Image.fromarray((np.clip(mask_hw, 0, 1) * 255).astype(np.uint8)).resize(image.size, Image.NEAREST)
    dimmed = Image.blend(image, Image.new("RGB", image.size), dim)
    tinted = Image.blend(image, Image.new("RGB", image.size, color), 0.25)
    return Image.composite(tinted, dimmed, weight)


def top_overlap(ids_a: Sequence[str], ids_b: Sequence[str]) -> tuple[list[str], float]:
    """The ids two top-k lists share (in ``ids_a``'s order) and the overlap ``|A ∩ B| / k``.

    >>> top_overlap(["a", "b", "c"], ["c", "d", "a"])
    (['a', 'c'], 0.6666666666666666)
    """
    if len(ids_a) != len(ids_b) or not ids_a:
        raise SearchError(f"compare two top-k lists of the same non-zero length, got {len(ids_a)} and {len(ids_b)}")
    shared = [i for i in ids_a if i in set(ids_b)]
    return shared, len(shared) / len(ids_a)


def grouped_scores(table: pd.DataFrame, by: str, *, focus: tuple[str, str] | None = None,
                   others: str | None = None) -> pd.DataFrame:
    """Every ranked image's best score with a ``group`` column, for box plots.

    Args:
        table: a :meth:`SearchResult.scores_table` (``score``, ``valid`` and metadata columns).
        by: the column whose values name the groups (e.g. ``"domain"``).
        focus: ``(column, value)``: only images with that value are grouped by ``by``; every
            other image goes into one group ``"other <column>"`` (e.g. the query's own photo
            per domain, against all other photos).
        others: the name of that one group (default ``"other <column>"``).

    Returns:
        the valid rows with a ``group`` column, groups ordered by falling median score
        (``result.attrs["order"]``; ``result.attrs["medians"]``: ``{group: median}`` in that
        order, the box plot's order in numbers).

    >>> t = pd.DataFrame({"score": [.9, .5, .2, .1], "valid": True, "domain": ["photo", "sketch", "photo", "sketch"],
    ...                   "source_photo": ["cat", "cat", "cup", "cup"]})
    >>> g = grouped_scores(t, "domain", focus=("source_photo", "cat"))
    >>> list(g["group"]), g.attrs["order"]
    (['photo', 'sketch', 'other source photo', 'other source photo'], ['photo', 'sketch', 'other source photo'])
    >>> {group: round(median, 2) for group, median in g.attrs["medians"].items()}
    {'photo': 0.9, 'sketch': 0.5, 'other source photo': 0.15}
    """
    for column in (by, *(focus[:1] if focus else ())):
        if column not in table:
            raise SearchError(f"the results have no column {column!r}; they have {', '.join(table.columns)}")
    rows = table[table["valid"]].copy()
    groups = rows[by].astype(str)
    if focus is not None:
        column, value = focus
        groups = groups.where(rows[column].astype(str) == str(value), others or f"other {column.replace('_', ' ')}")
    rows["group"] = groups
    medians = rows.groupby("group")["score"].median().sort_values(ascending=False)
    rows.attrs["order"] = medians.index.tolist()
    rows.attrs["medians"] = {str(group): float(median) for group, median in medians.items()}
    return rows
