"""Training-free few-shot segmentation methods: one call shape, one registry.

Every method scores each cell of a query image's feature grid for "looks like the support's
masked object"::

    fn(support_feats_hwc, support_weights_hw, query_feats_hwc) -> score_hw   # float32, query grid

``support_weights_hw`` is the support mask area-averaged onto the support's grid (float32 in
[0, 1], :func:`~featurelens.similarity.mask_to_grid`). Scores are cosines or differences of
cosines, so maps of several layers can be averaged. Each :class:`SegMethod` carries a
display name, a description and capability flags (``needs_background``, the natural
threshold if there is one), so a page lists them from :data:`SEG_METHODS`.

>>> feats_hwc = np.zeros((2, 2, 2), np.float32); feats_hwc[0] = [1, 0]; feats_hwc[1] = [0, 1]
>>> weights_hw = np.array([[1, 1], [0, 0]], np.float32)
>>> [get_method(k).fn(feats_hwc, weights_hw, feats_hwc).tolist() for k in SEG_METHODS]
[[[1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [-1.0, -1.0]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..similarity import cosine_similarity, region_reference

__all__ = ["SegMethod", "SEG_METHODS", "get_method", "list_methods", "EmptyMaskError", "FOREGROUND_MIN_WEIGHT",
           "prototype_scores", "nearest_part_scores", "fg_bg_scores"]

FOREGROUND_MIN_WEIGHT = 0.5
"""A support cell counts as a foreground part (nearest-part) when at least half of it is masked."""


class EmptyMaskError(ValueError):
    """The support mask selects nothing (or, for a method that needs one, no background)."""


def _check_weights(weights_hw: np.ndarray, needs_background: bool = False) -> None:
    if float(np.sum(weights_hw)) <= 1e-6:
        raise EmptyMaskError("The support mask is empty: draw over the object in the support image "
                             "(or pick a preset) to tell the model what to look for.")
    if needs_background and float(np.sum(1.0 - weights_hw)) <= 1e-6:
        raise EmptyMaskError("The support mask covers the whole image, so there is no background to compare "
                             "with: leave part of the support image unmasked, or pick another method.")


def prototype_scores(support_feats_hwc: np.ndarray, support_weights_hw: np.ndarray,
                     query_feats_hwc: np.ndarray) -> np.ndarray:
    """Cosine of every query cell to the prototype: the mask-weighted mean support feature."""
    _check_weights(support_weights_hw)
    return cosine_similarity(query_feats_hwc, region_reference(support_feats_hwc, support_weights_hw))


def nearest_part_scores(support_feats_hwc: np.ndarray, support_weights_hw: np.ndarray,
                        query_feats_hwc: np.ndarray) -> np.ndarray:
    """Cosine of every query cell to its nearest support foreground cell (the cells at least
    :data:`FOREGROUND_MIN_WEIGHT` masked; the most masked cell when none is)."""
    _check_weights(support_weights_hw)
    fg_hw = support_weights_hw >= min(FOREGROUND_MIN_WEIGHT, float(support_weights_hw.max()))
    parts_kc = support_feats_hwc[fg_hw].astype(np.float32)
    parts_kc /= np.maximum(np.linalg.norm(parts_kc, axis=1, keepdims=True), 1e-8)
    query_pc = query_feats_hwc.reshape(-1, query_feats_hwc.shape[-1]).astype(np.float32)
    query_pc = query_pc / np.maximum(np.linalg.norm(query_pc, axis=1, keepdims=True), 1e-8)
    return (query_pc @ parts_kc.T).max(axis=1).reshape(query_feats_hwc.shape[:2]).astype(np.float32)


def fg_bg_scores(support_feats_hwc: np.ndarray, support_weights_hw: np.ndarray,
                 query_feats_hwc: np.ndarray) -> np.ndarray:
    """Cosine to the foreground prototype minus cosine to the background prototype (the mean
    of the unmasked support cells): positive where the foreground is the closer one."""
    _check_weights(support_weights_hw, needs_background=True)
    fg_c = region_reference(support_feats_hwc, support_weights_hw)
    bg_c = region_reference(support_feats_hwc, 1.0 - support_weights_hw)
    return (cosine_similarity(query_feats_hwc, fg_c) - cosine_similarity(query_feats_hwc, bg_c)).astype(np.float32)


@dataclass(frozen=True)
class SegMethod:
    """A registered method: ``key``, ``display_name``, ``description``, ``fn`` (the call shape
    above), ``needs_background`` and ``natural_threshold`` (a threshold that means something
    without looking at the map, e.g. 0 for "foreground closer than background"; else None)."""

    key: str
    display_name: str
    description: str
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    needs_background: bool = False
    natural_threshold: float | None = None


SEG_METHODS: dict[str, SegMethod] = {}


def _register(method: SegMethod) -> None:
    if method.key in SEG_METHODS:
        raise ValueError(f"segmentation method {method.key!r} is registered twice")
    SEG_METHODS[method.key] = method


_register(SegMethod("prototype", "Prototype", "Cosine to the mean masked support feature (one vector for the object).",
                    prototype_scores))
_register(SegMethod("nearest_part", "Nearest part", "Highest cosine to any masked support cell: each part of the "
                    "object can match on its own.", nearest_part_scores))
_register(SegMethod("fg_bg", "Foreground vs background", "Is the object's prototype closer than the background's? "
                    "Uses the unmasked support too; 0 is the natural threshold.", fg_bg_scores,
                    needs_background=True, natural_threshold=0.0))


def list_methods() -> list[str]:
    """The registered method keys, in registration order."""
    return list(SEG_METHODS)


def get_method(key: str | SegMethod) -> SegMethod:
    """A method by key (or the method itself); an unknown key names the valid ones."""
    if isinstance(key, SegMethod):
        return key
    if key not in SEG_METHODS:
        raise KeyError(f"unknown segmentation method {key!r}; choose one of {list_methods()} (see list_methods())")
    return SEG_METHODS[key]
