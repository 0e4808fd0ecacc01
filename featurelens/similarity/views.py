"""Similarity overlay views: one reference, many layers or many images.

The pages "Layer hierarchy" and "Compare images" are thin wrappers around
:func:`layer_views` and :func:`image_views`. A reference point is given in normalised
image coordinates ``(x, y)`` in [0, 1]; it is mapped to the cell of each layer's grid that
contains it (:func:`~featurelens.similarity.pixel_to_cell`), so one click selects "the same
place" in layers of different resolution and in images of different sizes.

>>> import numpy as np
>>> feats = {"fine": np.random.default_rng(0).random((8, 8, 4), dtype=np.float32),
...          "coarse": np.random.default_rng(1).random((2, 2, 4), dtype=np.float32)}
>>> views = layer_views(feats, np.zeros((64, 64, 3), np.uint8), (0.9, 0.1))
>>> [(name, v.ref_cell) for name, v in views.items()]
[('fine', (0, 7)), ('coarse', (0, 1))]
>>> float(views["fine"].sim_hw[0, 7])
1.0
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .overlays import (COLOR_SCALES, COLORMAPS, UPSAMPLE_MODES, _check_image, _photo_image, _render_on,
                       render_overlay, shared_range)
from .locations import channel_map, pixel_to_cell, reference_vector, region_reference
from .metrics import describe_metric_choice, get_metric, similarity_map

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["OverlaySettings", "OverlayView", "VectorComparison", "layer_views", "image_views", "pair_views",
           "grid_view", "outline_cell", "compare_vectors", "chart_channels",
           "reference_cell", "ref_to_px", "GRID_COLOR", "CELL_COLOR"]

GRID_COLOR = (255, 255, 255)
CELL_COLOR = (255, 214, 10)

XY = tuple[float, float]


@dataclass(frozen=True)
class OverlaySettings:
    """How a similarity map is computed and drawn (every field is a registry key or a number)."""

    metric: str = "cosine"
    scale: str = "adaptive"
    cmap: str = "magma"
    opacity: float = 0.6
    base: str = "gray"
    upsample: str = "nearest"

    def __post_init__(self) -> None:
        get_metric(self.metric)
        for value, table, what in ((self.scale, COLOR_SCALES, "colour scale"), (self.cmap, COLORMAPS, "colormap"),
                                   (self.upsample, UPSAMPLE_MODES, "upsampling"), (self.base, ("gray", "color"), "base")):
            if value not in table:
                raise ValueError(f"unknown {what} {value!r}; choose one of {list(table)}")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")


@dataclass(frozen=True)
class OverlayView:
    """One rendered view: ``image_hwc_u8`` to show, the raw map ``map_hw`` on the layer's grid,
    the ``value_range`` its colours span, the reference cell (if the reference is in this
    image) and a ``note`` saying what was computed."""

    image_hwc_u8: np.ndarray
    sim_hw: np.ndarray
    value_range: tuple[float, float]
    ref_cell: tuple[int, int] | None
    note: str = ""


def ref_to_px(xy: XY, image_wh: tuple[int, int]) -> XY:
    """Normalised ``(x, y)`` → pixel coordinates of an image of size ``(W, H)``."""
    return (xy[0] * image_wh[0], xy[1] * image_wh[1])


def reference_cell(xy: XY, grid_hw: tuple[int, int]) -> tuple[int, int]:
    """The ``(row, col)`` of a ``grid_hw`` layer under normalised point ``xy``."""
    return pixel_to_cell((xy[0], xy[1]), (1, 1), grid_hw)


def _range(maps: Sequence[np.ndarray], settings: OverlaySettings) -> tuple[float, float] | None:
    """Fixed scale: the metric's natural range, or one range shared by all views for
    unbounded metrics; adaptive: None (each view stretches to its own values)."""
    if settings.scale != "fixed" or not maps:
        return None
    metric = get_metric(settings.metric)
    return metric.value_range if metric.bounded else shared_range(maps)


def _render(display_hwc_u8: np.ndarray, map_hw: np.ndarray, settings: OverlaySettings,
            value_range: tuple[float, float] | None, marker: XY | None, pin: XY | None,
            ref_cell: tuple[int, int] | None, note: str, photo: Image.Image | None = None) -> OverlayView:
    """Draw ``map_hw`` over the photo with the reference/pin rings (normalised points).
    ``photo``: ``display_hwc_u8`` already prepared by ``overlays._photo_image`` (views of
    one photo share it)."""
    wh = (display_hwc_u8.shape[1], display_hwc_u8.shape[0])
    marker_xy, pin_xy = ref_to_px(marker, wh) if marker else None, ref_to_px(pin, wh) if pin else None
    if photo is None:
        image = render_overlay(display_hwc_u8, map_hw, scale=settings.scale, value_range=value_range,
                               cmap=settings.cmap, opacity=settings.opacity, base=settings.base,
                               upsample=settings.upsample, marker_xy=marker_xy, pin_xy=pin_xy)
    else:
        image = _render_on(photo, map_hw, scale=settings.scale, value_range=value_range, cmap=settings.cmap,
                           opacity=settings.opacity, upsample=settings.upsample, marker_xy=marker_xy,
                           pin_xy=pin_xy, marker_radius=None)
    lo_hi = value_range or (float(map_hw.min()), float(map_hw.max()))
    return OverlayView(image, map_hw, lo_hi, ref_cell, note)


def layer_views(feats_by_layer: Mapping[str, np.ndarray], display_hwc_u8: np.ndarray, ref_xy: XY,
                settings: OverlaySettings = OverlaySettings(), *, pin_xy: XY | None = None,
                channel: tuple[str, int] | None = None,
                ref_mask_hw: np.ndarray | None = None) -> dict[str, OverlayView]:
    """One image, several layers: each layer's map of similarity to its own reference cell.

    ``feats_by_layer``: ``{layer: feats_hwc}`` of one image. ``display_hwc_u8``: the photo to
    draw on. ``channel``: ``(layer, index)`` shows that channel's activation in that layer's
    view instead of similarity (IFeaLiD's channel view, on its own adaptive scale).
    ``ref_mask_hw``: use the mean feature under this soft mask (any resolution) as the
    reference instead of the point.
    """
    channel_layer = channel[0] if channel else None
    maps, notes = {}, {}
    for name, feats_hwc in feats_by_layer.items():
        if name == channel_layer:
            maps[name] = channel_map(feats_hwc, channel[1])
            notes[name] = f"Activation of channel {channel[1]} (own adaptive scale)."
            continue
        if ref_mask_hw is not None:
            ref_c = region_reference(feats_hwc, ref_mask_hw)
        else:
            ref_c = reference_vector(feats_hwc, reference_cell(ref_xy, feats_hwc.shape[:2]))
        maps[name] = similarity_map(feats_hwc, ref_c, settings.metric)
        notes[name] = describe_metric_choice(settings.metric, feats_hwc, ref_c)
    value_range = _range([m for name, m in maps.items() if name != channel_layer], settings)
    photo = _photo_image(_check_image(display_hwc_u8), settings.base) if maps else None  # one photo, all layers
    views = {}
    for name, map_hw in maps.items():
        is_channel = name == channel_layer
        views[name] = _render(display_hwc_u8, map_hw, replace(settings, scale="adaptive") if is_channel else settings,
                              None if is_channel else value_range, ref_xy, pin_xy,
                              reference_cell(ref_xy, map_hw.shape), notes[name], photo)
    return views


def image_views(feats_per_image: Sequence[np.ndarray], displays_hwc_u8: Sequence[np.ndarray], ref_image: int,
                ref_xy: XY, settings: OverlaySettings = OverlaySettings(), *,
                pin: tuple[int, XY] | None = None) -> list[OverlayView]:
    """Several images, one layer: every image's map of similarity to the reference cell of
    image ``ref_image`` (ISO's multi-image overlay).

    ``feats_per_image``: one ``feats_hwc`` per image (grids may differ). With the adaptive
    scale all images share one range, so the brightest spot in any image is the best match
    anywhere; the fixed scale uses the metric's range. All positions go through one metric
    call, so data-dependent choices (the angular variant) are the same for every image.
    """
    if not 0 <= ref_image < len(feats_per_image):
        raise IndexError(f"reference image {ref_image} is not among the {len(feats_per_image)} images")
    ref_feats = feats_per_image[ref_image]
    cell = reference_cell(ref_xy, ref_feats.shape[:2])
    ref_c = reference_vector(ref_feats, cell)
    flat_pc = np.concatenate([f.reshape(-1, f.shape[-1]) for f in feats_per_image])
    flat_p = similarity_map(flat_pc[:, None, :], ref_c, settings.metric).reshape(-1)
    bounds = np.cumsum([0] + [f.shape[0] * f.shape[1] for f in feats_per_image])
    maps = [flat_p[a:b].reshape(f.shape[:2]) for a, b, f in zip(bounds[:-1], bounds[1:], feats_per_image)]
    value_range = _range(maps, settings) or shared_range(maps)
    note = describe_metric_choice(settings.metric, flat_pc, ref_c)
    return [_render(display, map_hw, settings, value_range, ref_xy if i == ref_image else None,
                    pin[1] if pin and pin[0] == i else None, cell if i == ref_image else None, note)
            for i, (map_hw, display) in enumerate(zip(maps, displays_hwc_u8))]


def grid_view(display_hwc_u8: np.ndarray, grid_hw: tuple[int, int], cell_rc: tuple[int, int] | None = None,
              line_alpha: float = 0.35) -> np.ndarray:
    """The photo with a layer's feature grid drawn on it and cell ``cell_rc`` outlined in
    yellow (the blog post's left panel: which square the reference is).

    >>> out = grid_view(np.zeros((8, 8, 3), np.uint8), (2, 2), (0, 1))
    >>> out[0, 4].tolist(), out[6, 6].tolist()
    ([255, 214, 10], [0, 0, 0])
    """
    out = np.array(display_hwc_u8, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    rows = np.floor(np.arange(1, grid_hw[0]) * h / grid_hw[0]).astype(int)
    cols = np.floor(np.arange(1, grid_hw[1]) * w / grid_hw[1]).astype(int)
    grid = np.array(GRID_COLOR, np.float32)
    out[rows] = (out[rows] * (1 - line_alpha) + grid * line_alpha).astype(np.uint8)
    out[:, cols] = (out[:, cols] * (1 - line_alpha) + grid * line_alpha).astype(np.uint8)
    if cell_rc is not None:
        outline_cell(out, grid_hw, cell_rc)
    return out


def outline_cell(out_hwc_u8: np.ndarray, grid_hw: tuple[int, int], cell_rc: tuple[int, int]) -> None:
    """In place: a yellow outline around cell ``cell_rc`` of a ``grid_hw`` layer drawn over the image."""
    h, w = out_hwc_u8.shape[:2]
    top, bottom = int(cell_rc[0] * h / grid_hw[0]), int((cell_rc[0] + 1) * h / grid_hw[0]) - 1
    left, right = int(cell_rc[1] * w / grid_hw[1]), int((cell_rc[1] + 1) * w / grid_hw[1]) - 1
    thick = max(1, min(h, w) // 150)
    for y0, y1, x0, x1 in ((top, top + thick, left, right + 1), (bottom - thick + 1, bottom + 1, left, right + 1),
                           (top, bottom + 1, left, left + thick), (top, bottom + 1, right - thick + 1, right + 1)):
        out_hwc_u8[max(y0, 0):y1, max(x0, 0):x1] = CELL_COLOR


def pair_views(feats_a_hwc: np.ndarray, feats_b_hwc: np.ndarray, display_a_hwc_u8: np.ndarray,
               display_b_hwc_u8: np.ndarray, ref_xy: XY,
               settings: OverlaySettings = OverlaySettings()) -> tuple[np.ndarray, OverlayView]:
    """The blog post's two-image view: image A with its grid and the chosen cell outlined,
    and image B coloured by similarity to that cell of A, with its best match outlined too.

    With the adaptive scale B's colours span B's own values: the reference cell (1.0 for
    cosine) lies in A, and stretching to it would leave B dull everywhere.
    """
    cell = reference_cell(ref_xy, feats_a_hwc.shape[:2])
    left = grid_view(display_a_hwc_u8, feats_a_hwc.shape[:2], cell)
    ref_c = reference_vector(feats_a_hwc, cell)
    flat_pc = np.concatenate([feats_a_hwc.reshape(-1, feats_a_hwc.shape[-1]), feats_b_hwc.reshape(-1, feats_b_hwc.shape[-1])])
    map_hw = similarity_map(flat_pc[:, None, :], ref_c, settings.metric)[feats_a_hwc.shape[0] * feats_a_hwc.shape[1]:]
    map_hw = map_hw.reshape(feats_b_hwc.shape[:2])  # one metric call over A and B: the same angular variant as A's
    note = describe_metric_choice(settings.metric, flat_pc, ref_c)
    right = _render(display_b_hwc_u8, map_hw, settings, _range([map_hw], settings), None, None, None, note)
    best_rc = np.unravel_index(int(np.argmax(map_hw)), map_hw.shape)
    outline_cell(right.image_hwc_u8, map_hw.shape, (int(best_rc[0]), int(best_rc[1])))
    return left, right


@dataclass(frozen=True)
class VectorComparison:
    """The feature vectors at the reference and at the pinned point of one layer (IFeaLiD's
    bar chart), with their cosine similarity. ``rows`` is a long table for a chart:
    ``{"channel", "value", "vector": "reference"|"pinned"}``."""

    ref_c: np.ndarray
    pin_c: np.ndarray | None
    cosine: float | None
    rows: list[dict]


def compare_vectors(feats_hwc: np.ndarray, ref_xy: XY, pin_xy: XY | None = None) -> VectorComparison:
    """Feature vectors at normalised points ``ref_xy`` and ``pin_xy`` of one layer.

    >>> feats = np.zeros((2, 2, 3), np.float32); feats[0, 0] = [1, 0, 0]; feats[1, 1] = [1, 1, 0]
    >>> cmp = compare_vectors(feats, (0.1, 0.1), (0.9, 0.9))
    >>> round(cmp.cosine, 4), len(cmp.rows)
    (0.7071, 6)
    """
    ref_c = reference_vector(feats_hwc, reference_cell(ref_xy, feats_hwc.shape[:2]))
    pin_c = reference_vector(feats_hwc, reference_cell(pin_xy, feats_hwc.shape[:2])) if pin_xy else None
    # .tolist(): Python floats in one C call (iterating a numpy vector makes a scalar per element)
    rows = [{"channel": c, "value": v, "vector": "reference"} for c, v in enumerate(ref_c.tolist())]
    cosine = None
    if pin_c is not None:
        rows += [{"channel": c, "value": v, "vector": "pinned"} for c, v in enumerate(pin_c.tolist())]
        cosine = float(similarity_map(ref_c[None, None], pin_c, "cosine")[0, 0])
    return VectorComparison(ref_c, pin_c, cosine, rows)


def chart_channels(ref_c: np.ndarray, *, top_k: int | None = None, keep: int | None = None) -> np.ndarray:
    """The channels of feature vector ``ref_c`` (1-D, ``(C,)``) to draw in a bar chart, in the
    chart's order: largest ``|value|`` first (ties by channel number), only the ``top_k`` of
    them (None: all ``C``), plus channel ``keep`` (the chosen one) at its place in that order
    when it is not among them, so a chart always shows the channel it highlights. Returns
    int64 channel indices ``(K,)``; ``keep`` outside ``0..C-1`` is ignored.

    >>> ref_c = np.array([0.1, -3.0, 2.0, 0.0, 2.0], np.float32)
    >>> chart_channels(ref_c).tolist()
    [1, 2, 4, 0, 3]
    >>> chart_channels(ref_c, top_k=2).tolist(), chart_channels(ref_c, top_k=2, keep=3).tolist()
    ([1, 2], [1, 2, 3])
    >>> chart_channels(ref_c, top_k=0, keep=99).tolist()
    []
    """
    if ref_c.ndim != 1:
        raise ValueError(f"ref_c must be one feature vector (C,), got shape {ref_c.shape}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be None (all channels) or at least 0, got {top_k}")
    order = np.argsort(-np.abs(ref_c), kind="stable")  # stable: equal magnitudes stay in channel order
    if top_k is None or top_k >= order.size:
        return order.astype(np.int64)
    chosen = order[:top_k]
    if keep is not None and 0 <= keep < order.size and keep not in chosen:
        chosen = order[np.isin(order, np.append(chosen, keep))]  # ``keep`` at its rank, not at the end
    return chosen.astype(np.int64)
