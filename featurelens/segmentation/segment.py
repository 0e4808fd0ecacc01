"""Segment a query image from a masked support image: score maps of one or several layers,
fused, upsampled to the image and thresholded (a number, or Otsu's automatic choice).

>>> rng = np.random.default_rng(0)
>>> a_c, b_c = rng.normal(size=8), rng.normal(size=8)
>>> feats_hwc = np.where(np.arange(4)[None, :, None] < 2, a_c, b_c).repeat(4, 0).astype(np.float32)  # left: a
>>> mask_hw = np.zeros((4, 4)); mask_hw[:, :2] = 1
>>> result = segment({"l": feats_hwc}, mask_hw, {"l": feats_hwc}, out_hw=(4, 4))
>>> result.mask_hw[0].astype(int).tolist(), iou(result.mask_hw, mask_hw > 0)
([1, 1, 0, 0], 1.0)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from skimage.filters import threshold_otsu
from skimage.segmentation import find_boundaries

from ..similarity import draw_region, mask_to_grid, upsample_map
from .methods import EmptyMaskError, get_method

__all__ = ["SegmentationResult", "segment", "fuse_scores", "choose_threshold", "iou", "dice", "region_mask",
           "draw_region", "mask_overlay", "THRESHOLD_MODES"]

THRESHOLD_MODES = ("otsu", "natural", "manual")
"""``otsu``: Otsu's threshold of the fused map; ``natural``: the method's own (fg vs bg: 0);
``manual``: a number."""


@dataclass(frozen=True)
class SegmentationResult:
    """``score_hw``: fused scores at ``out_hw`` (float32); ``mask_hw``: ``score_hw > threshold``
    (bool); ``layer_scores``: each layer's map on its own grid; ``method``, ``threshold``."""

    method: str
    layers: tuple[str, ...]
    score_hw: np.ndarray
    mask_hw: np.ndarray
    threshold: float
    layer_scores: dict[str, np.ndarray]

    @property
    def coverage(self) -> float:
        """Fraction of the image in the mask."""
        return float(self.mask_hw.mean())


def fuse_scores(scores_by_layer: Mapping[str, np.ndarray], out_hw: tuple[int, int]) -> np.ndarray:
    """Each layer's ``score_hw`` upsampled (bilinear) to ``out_hw``, averaged → float32 ``out_hw``."""
    if not scores_by_layer:
        raise ValueError("no layers given: pick at least one layer")
    maps = [upsample_map(s, tuple(out_hw), "bilinear") for s in scores_by_layer.values()]
    return np.mean(maps, axis=0).astype(np.float32)


def choose_threshold(score_hw: np.ndarray, mode: str = "otsu", value: float | None = None,
                     natural: float | None = None) -> float:
    """The threshold for ``mode`` (see :data:`THRESHOLD_MODES`). A flat map has no Otsu
    threshold: its single value is returned (so nothing is selected).

    >>> round(choose_threshold(np.array([[0.0, 0.1], [0.9, 1.0]])), 2)
    0.1
    >>> choose_threshold(np.ones((2, 2)))
    1.0
    """
    if mode == "manual":
        if value is None or not np.isfinite(value):
            raise ValueError("a manual threshold needs a finite value")
        return float(value)
    if mode == "natural":
        if natural is None:
            raise ValueError("this method has no natural threshold; use 'otsu' or 'manual'")
        return float(natural)
    if mode != "otsu":
        raise ValueError(f"unknown threshold mode {mode!r}; choose one of {THRESHOLD_MODES}")
    finite = score_hw[np.isfinite(score_hw)]
    if finite.size == 0 or float(finite.max() - finite.min()) < 1e-6:
        return float(finite.max()) if finite.size else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(threshold_otsu(finite.astype(np.float64)))


def region_mask(mask_any: np.ndarray) -> np.ndarray:
    """A support mask of any kind → float32 ``(H, W)`` weights in [0, 1]: ``mask_hw`` bool,
    0/1 or 0/255, or the canvas's RGBA strokes ``(H, W, 4)`` (weight = opacity where drawn)."""
    mask = np.asarray(mask_any)
    if mask.ndim == 3:
        mask = mask[..., 3] if mask.shape[-1] == 4 else mask.max(axis=-1)
    if mask.ndim != 2 or mask.size == 0:
        raise EmptyMaskError(f"a mask is a 2-D (H, W) array; got shape {mask.shape}")
    mask = mask.astype(np.float32)
    top = float(mask.max()) if mask.size else 0.0
    return np.clip(mask / (255.0 if top > 1.0 else 1.0), 0.0, 1.0)


def segment(support_feats: Mapping[str, np.ndarray], support_mask_hw: np.ndarray,
            query_feats: Mapping[str, np.ndarray], *, method: str = "prototype", layers: Sequence[str] | None = None,
            threshold: str = "otsu", value: float | None = None, out_hw: tuple[int, int]) -> SegmentationResult:
    """Segment the query: ``support_feats``/``query_feats`` are ``{layer: feats_hwc}``;
    ``support_mask_hw`` any resolution (see :func:`region_mask`); ``layers`` (default: all
    given) are fused by averaging their upsampled score maps; ``out_hw`` is the size of the
    returned score map and mask (the query image's). Raises :class:`EmptyMaskError` with a
    sentence for people when the mask selects nothing."""
    seg = get_method(method)
    layers = tuple(layers or support_feats)
    missing = [l for l in layers if l not in support_feats or l not in query_feats]
    if missing:
        raise KeyError(f"no features for layers {missing}; compute them for the support and the query")
    weights = region_mask(support_mask_hw)
    scores = {}
    for layer in layers:
        weights_hw = mask_to_grid(weights, support_feats[layer].shape[:2])
        scores[layer] = seg.fn(support_feats[layer], weights_hw, query_feats[layer])
    score_hw = fuse_scores(scores, out_hw)
    t = choose_threshold(score_hw, threshold, value, seg.natural_threshold)
    return SegmentationResult(seg.key, layers, score_hw, score_hw > t, t, scores)


def iou(pred_hw: np.ndarray, truth_hw: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty).

    >>> iou(np.array([1, 1, 0, 0], bool), np.array([0, 1, 1, 0], bool))
    0.3333333333333333
    """
    pred, truth = np.asarray(pred_hw, bool), np.asarray(truth_hw, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {truth.shape}; resize the prediction first")
    union = int((pred | truth).sum())
    return 1.0 if union == 0 else int((pred & truth).sum()) / union


def dice(pred_hw: np.ndarray, truth_hw: np.ndarray) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two bool masks (1.0 when both are empty)."""
    pred, truth = np.asarray(pred_hw, bool), np.asarray(truth_hw, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {truth.shape}; resize the prediction first")
    total = int(pred.sum() + truth.sum())
    return 1.0 if total == 0 else 2 * int((pred & truth).sum()) / total


def mask_overlay(image_hwc_u8: np.ndarray, mask_hw: np.ndarray, color: tuple[int, int, int] = (255, 212, 0),
                 opacity: float = 0.45) -> np.ndarray:
    """The photo with ``mask_hw`` (bool, any resolution: resized nearest) tinted in ``color``
    and outlined → uint8 ``(H, W, 3)``."""
    image = np.asarray(image_hwc_u8)
    h, w = image.shape[:2]
    mask = np.asarray(mask_hw, bool)
    if mask.shape != (h, w):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 127
    out = image.astype(np.float32)
    tint = np.asarray(color, np.float32)
    out[mask] = (1 - opacity) * out[mask] + opacity * tint
    edge = find_boundaries(mask, mode="inner")
    edge |= np.roll(edge, 1, axis=0) | np.roll(edge, 1, axis=1)
    out[edge & mask] = tint
    return np.clip(out, 0, 255).astype(np.uint8)
