"""Searching a cache with a query image of any size: the query's features are computed with the
cache's own model and input size, then :func:`~featurelens.search.search` runs.

This is what ``python -m featurelens search`` does; notebooks can call it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..models import FeatureModel, load_model
from .api import search
from .errors import SearchMismatchError
from .query import query_from_image
from .results import SearchResult

__all__ = ["search_image"]


def search_image(cache: Any, image: Image.Image | np.ndarray, *, mask_hw: np.ndarray | None = None,
                 box_xyxy: Sequence[float] | None = None, layer: str | None = None,
                 model: FeatureModel | None = None, image_source: str | os.PathLike | None = None,
                 top_k: int = 10, unique_by: str | None = None, include_self: bool = False,
                 device: str | torch.device | None = None) -> SearchResult:
    """Search ``cache`` for the region of ``image`` given by ``mask_hw`` or ``box_xyxy``.

    Args:
        cache: an open :class:`~featurelens.caches.FeatureCache`.
        image: the query image (PIL or ``image_hwc_u8``), any size: it is squashed to the cache's
            input size like every cached image.
        mask_hw: the region at the image's size (or on the layer's grid), in [0, 1].
        box_xyxy: instead, a rectangle ``(x0, y0, x1, y1)`` in fractions of the image.
        layer: the layer to search; default the cache's last (deepest) layer.
        model: the cache's model if already loaded; default ``load_model(cache.model_name)``.
        image_source: the query image's file; when the cache holds that file, it is left out of
            the ranking unless ``include_self``.
        top_k, unique_by, include_self, device: as in :func:`~featurelens.search.search`.

    Raises:
        SearchMismatchError: the layer is not in the cache, or ``model`` is not the cache's model
            or works at another input size (the message names both).
        SearchError: no region, an empty region, or invalid arguments.
    """
    layer = cache.layers[-1] if layer is None else layer
    if layer not in cache.layers:
        raise SearchMismatchError(f"the cache has no layer {layer!r}; it holds {', '.join(cache.layers)}: "
                                  "pass one of those")
    model = load_model(cache.model_name, device=device) if model is None else model
    if model.name != cache.model_name or tuple(model.input_hw) != tuple(cache.input_hw):
        raise SearchMismatchError(
            f"the cache was built with {cache.model_name!r} at input {tuple(cache.input_hw)}, the query model is "
            f"{model.name!r} at input {tuple(model.input_hw)}: load the cache's model with "
            f"load_model({cache.model_name!r})")
    query = query_from_image(model, image, layer=layer, mask_hw=mask_hw, box_xyxy=box_xyxy,
                             image_index=_source_index(cache, image_source))
    return search(cache, query, top_k=top_k, unique_by=unique_by, include_self=include_self, device=device)


def _source_index(cache: Any, image_source: str | os.PathLike | None) -> int | None:
    """The index of the cached image read from the same file as the query, if any."""
    if image_source is None or "source" not in cache.metadata.columns:
        return None
    wanted = Path(image_source).expanduser().resolve()
    for index, source in enumerate(cache.metadata["source"]):
        if source and Path(str(source)).expanduser().resolve() == wanted:
            return index
    return None
