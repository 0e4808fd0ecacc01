"""Similarity of a reference to its corresponding cell across a transform sweep (ISO).

For a reference point of the original image, every transformed image's corresponding cell is
the cell under the point mapped through the transform (:func:`map_point`). The table has one
row per (reference, layer, transform): the similarity of the two feature vectors, or NaN —
a gap, not a zero — when the point left the frame; ``padding`` says how much of the
corresponding cell is zero padding (a rotated photo's corners), where border effects show.

>>> from featurelens.invariance import parse_transforms
>>> feats_hwc = np.random.default_rng(0).normal(size=(4, 4, 8)).astype(np.float32)
>>> ts = parse_transforms("rotate", "0, 90")
>>> swept = [{"l": np.rot90(feats_hwc, k=i)} for i in range(2)]   # a grid that rotates exactly
>>> table = invariance_table({"l": feats_hwc}, swept, ts, {"A": (0.6, 0.1)}, image_wh=(4, 4))
>>> table[["transform", "similarity", "row", "col"]].values.tolist()
[['0°', 1.0, 0.0, 2.0], ['90°', 1.0, 1.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..models import FeatureModel
from ..similarity import (OverlaySettings, draw_ring, get_metric, mask_to_grid, reference_cell, reference_vector,
                          render_overlay, shared_range, similarity_map)
from .transforms import XY, Transform, apply_transform, map_point, valid_mask

__all__ = ["TransformedImage", "SweepFeatures", "transform_images", "sweep_features", "invariance_table",
           "sweep_means", "transformed_views", "TABLE_COLUMNS"]

TABLE_COLUMNS = ("reference", "layer", "transform", "parameter", "similarity", "row", "col", "padding")


@dataclass(frozen=True)
class TransformedImage:
    """One image of a sweep: the ``transform``, the transformed ``image_hwc_u8`` and
    ``valid_hw`` (float32 ``(H, W)``, 1 where the pixel is the photo, 0 where it is padding)."""

    transform: Transform
    image_hwc_u8: np.ndarray
    valid_hw: np.ndarray


def transform_images(image_hwc_u8: np.ndarray, transforms: Sequence[Transform]) -> list[TransformedImage]:
    """Each transform applied to ``image_hwc_u8`` (``H×W×3`` uint8), bilinear, black padding."""
    image = np.asarray(image_hwc_u8)
    return [TransformedImage(t, apply_transform(image, t), valid_mask(t, image.shape[:2])) for t in transforms]


@dataclass(frozen=True)
class SweepFeatures:
    """A sweep run through a model: ``original`` (``{layer: feats_hwc}`` of the untransformed
    image), ``images`` (:class:`TransformedImage`, in transform order) and ``feats`` (one
    ``{layer: feats_hwc}`` per transformed image)."""

    original: dict[str, np.ndarray]
    images: list[TransformedImage]
    feats: list[dict[str, np.ndarray]]


def sweep_features(model: FeatureModel, image_hwc_u8: np.ndarray, transforms: Sequence[Transform],
                   layers: Sequence[str]) -> SweepFeatures:
    """The original and every transformed image (:func:`transform_images`) through ``model``
    in one pass, ``layers``' features of each."""
    images = transform_images(image_hwc_u8, transforms)
    feats = model.features([np.asarray(image_hwc_u8), *(t.image_hwc_u8 for t in images)], list(layers))
    per_image = [{layer: feats[layer][i] for layer in layers} for i in range(len(images) + 1)]
    return SweepFeatures(per_image[0], images, per_image[1:])


def _on_padding(valid_hw: np.ndarray, xy: XY) -> bool:
    h, w = valid_hw.shape
    return bool(valid_hw[min(int(xy[1] * h), h - 1), min(int(xy[0] * w), w - 1)] < 0.5)


def _row_col(cell: tuple[int, int] | None) -> tuple[float, float]:
    return (float(cell[0]), float(cell[1])) if cell else (float("nan"), float("nan"))


def invariance_table(ref_feats: Mapping[str, np.ndarray], swept_feats: Sequence[Mapping[str, np.ndarray]],
                     transforms: Sequence[Transform], refs: Mapping[str, XY], *, image_wh: tuple[int, int],
                     valid_hws: Sequence[np.ndarray] | None = None, metric: str = "cosine") -> pd.DataFrame:
    """One row per (reference, layer, transform) in :data:`TABLE_COLUMNS` order.

    ``ref_feats``: ``{layer: feats_hwc}`` of the original; ``swept_feats``: the same layers of
    each transformed image, in ``transforms`` order; ``refs``: ``{name: normalised (x, y)}``;
    ``image_wh``: the original's size (rotations of non-square images need it);
    ``valid_hws``: each transformed image's :func:`valid_mask` (for ``padding``).
    ``similarity`` is NaN (a gap) where the point left the frame or, with ``valid_hws``, lands
    on padding; ``row``/``col`` are the corresponding cell (NaN there too); ``padding`` is the
    share of that cell that is padding (border effects: the cell's features see the zeros)."""
    if len(swept_feats) != len(transforms):
        raise ValueError(f"{len(swept_feats)} feature sets for {len(transforms)} transforms; pass one per transform")
    get_metric(metric)
    rows = []
    for name, xy in refs.items():
        for layer, feats_hwc in ref_feats.items():
            ref_c = reference_vector(feats_hwc, reference_cell(xy, feats_hwc.shape[:2]))
            for i, t in enumerate(transforms):
                target_hwc = swept_feats[i][layer]
                mapped = map_point(t, xy, image_wh)
                if mapped is not None and valid_hws is not None and _on_padding(valid_hws[i], mapped):
                    mapped = None   # the point shows padding (the edge of a rotated photo): no value either
                cell = reference_cell(mapped, target_hwc.shape[:2]) if mapped is not None else None
                sim = float(similarity_map(target_hwc[cell][None, None], ref_c, metric)[0, 0]) if cell else np.nan
                padding = np.nan
                if cell and valid_hws is not None:
                    padding = 1.0 - float(mask_to_grid(valid_hws[i], target_hwc.shape[:2])[cell])
                rows.append((name, layer, t.label, float(t.value), sim, *_row_col(cell), padding))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def sweep_means(table: pd.DataFrame, transforms: Sequence[Transform]) -> pd.Series:
    """Mean similarity of each reference to its corresponding cell over the copies that move the
    photo (identity left out, gaps skipped): the numbers a preset's note quotes. ``table`` is an
    :func:`invariance_table` of ``transforms``; the result is indexed by ``(reference, layer)``.

    >>> t = pd.DataFrame({"reference": "A", "layer": "stage7", "parameter": [0.0, 90.0, 180.0],
    ...                   "similarity": [1.0, 0.4, np.nan]})
    >>> sweep_means(t, [Transform("rotate", v) for v in (0.0, 90.0, 180.0)]).round(2).to_dict()
    {('A', 'stage7'): 0.4}
    """
    identity = [float(t.value) for t in transforms if t.is_identity]
    moved = table[~table["parameter"].isin(identity)]
    return moved.groupby(["reference", "layer"], sort=False)["similarity"].mean()


def transformed_views(ref_feats_hwc: np.ndarray, swept_feats_hwc: Sequence[np.ndarray],
                      images: Sequence[TransformedImage], ref_xy: XY, settings: OverlaySettings = OverlaySettings(),
                      *, image_wh: tuple[int, int], ring: tuple[int, int, int] = (255, 255, 255),
                      on_image: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray, XY | None]]:
    """Every transformed image coloured by similarity to the reference cell of the original
    (one shared colour range, as ISO's multi-image overlay), with a ring at the corresponding
    point → ``[(image_hwc_u8, sim_hw, mapped xy or None)]``. ``on_image(i)``: progress."""
    ref_c = reference_vector(ref_feats_hwc, reference_cell(ref_xy, ref_feats_hwc.shape[:2]))
    maps = [similarity_map(f, ref_c, settings.metric) for f in swept_feats_hwc]
    metric = get_metric(settings.metric)
    value_range = metric.value_range if settings.scale == "fixed" and metric.bounded else shared_range(maps)
    views = []
    for i, (map_hw, shown) in enumerate(zip(maps, images)):
        out = render_overlay(shown.image_hwc_u8, map_hw, scale="fixed", value_range=value_range, cmap=settings.cmap,
                             opacity=settings.opacity, base=settings.base, upsample=settings.upsample)
        mapped = map_point(shown.transform, ref_xy, image_wh)
        if mapped is not None:
            h, w = out.shape[:2]
            draw_ring(out, (min(mapped[0] * w, w - 0.5), min(mapped[1] * h, h - 0.5)), ring, max(4.0, 0.03 * min(h, w)))
        views.append((out, map_hw, mapped))
        if on_image:
            on_image(i)
    return views
