"""A figure of similarity views for notebooks and papers: the views in a grid, each with its
label, a colour bar and a caption line (model, layer, metric, colour scale, reference point).

The app's "Save figure" button draws the same layout in the browser from what is on screen.

>>> import numpy as np
>>> views = [np.full((40, 60, 3), 200, np.uint8), np.zeros((40, 60, 3), np.uint8)]
>>> fig = views_figure(views, ["stage 2", "stage 7"], "cosine · adaptive", colorbar=("magma", 0.0, 1.0))
>>> fig.dtype, fig.shape[2], fig.shape[1] >= 2 * 60
(dtype('uint8'), 3, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .overlays import colorbar_image

__all__ = ["views_figure", "FIGURE_BACKGROUND"]

FIGURE_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_PAD, _FONT_PX = 12, 16


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def views_figure(views_hwc_u8: Sequence[np.ndarray], labels: Sequence[str], caption: str, *, per_row: int = 4,
                 colorbar: tuple[str, float, float] | None = None) -> np.ndarray:
    """Views (``H×W×3`` uint8 each, e.g. ``OverlayView.image_hwc_u8``) in rows of ``per_row``,
    each with its label underneath, then a horizontal colour bar ``(cmap, lo, hi)`` and the
    caption → one ``H×W×3`` uint8 image on white (save it with Pillow)."""
    if not views_hwc_u8 or len(views_hwc_u8) != len(labels):
        raise ValueError(f"need one label per view; got {len(views_hwc_u8)} views and {len(labels)} labels")
    per_row = max(1, min(per_row, len(views_hwc_u8)))
    cell_w = max(v.shape[1] for v in views_hwc_u8)
    cell_h = max(v.shape[0] for v in views_hwc_u8) + _FONT_PX + _PAD
    rows = -(-len(views_hwc_u8) // per_row)
    width = _PAD + per_row * (cell_w + _PAD)
    bar_h = 2 * _FONT_PX + _PAD if colorbar else 0
    height = _PAD + rows * (cell_h + _PAD) + bar_h + 2 * _FONT_PX + _PAD
    figure = Image.new("RGB", (width, height), FIGURE_BACKGROUND)
    draw, font = ImageDraw.Draw(figure), _font(_FONT_PX)
    for index, (view, label) in enumerate(zip(views_hwc_u8, labels)):
        x = _PAD + (index % per_row) * (cell_w + _PAD)
        y = _PAD + (index // per_row) * (cell_h + _PAD)
        figure.paste(Image.fromarray(np.ascontiguousarray(view)), (x, y))
        draw.text((x, y + view.shape[0] + 4), label, fill=_TEXT, font=font)
    y = _PAD + rows * (cell_h + _PAD)
    if colorbar:
        cmap, lo, hi = colorbar
        bar_w = min(260, width - 2 * _PAD - 120)
        bar = np.ascontiguousarray(np.rot90(colorbar_image(cmap, lo, hi, height=bar_w, width=_FONT_PX), k=-1))
        draw.text((_PAD, y), f"{lo:.2f}", fill=_TEXT, font=font)
        figure.paste(Image.fromarray(bar), (_PAD + 50, y))
        draw.text((_PAD + 60 + bar_w, y), f"{hi:.2f}", fill=_TEXT, font=font)
        y += bar_h
    draw.text((_PAD, y), caption, fill=_TEXT, font=font)
    return np.asarray(figure)
