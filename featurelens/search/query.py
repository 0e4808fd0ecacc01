"""The search query: one image's features at one layer, and a soft mask on that layer's grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from .errors import SearchError
from .masks import box_mask, grid_mask, mask_box

if TYPE_CHECKING:
    from ..models import FeatureModel

__all__ = ["Query", "query_from_features", "query_from_image"]


@dataclass(frozen=True, eq=False)
class Query:
    """What the user asked: the region ``mask_hw`` of the query image at ``layer`` of ``model_name``.

    Build it with :func:`query_from_features`, which checks it.

    Attributes:
        model_name: registry name of the model that computed ``feats_hwc`` (e.g. ``efficientnet_lite0.in1k``).
        layer: the layer name.
        feats_hwc: ``(H, W, C)`` float32 features of the query image at ``layer``.
        mask_hw: ``(H, W)`` float32 in [0, 1], the covered fraction of each cell.
        image_id: the query image's id in the searched set, if it is in it (excluded unless
            ``include_self``).
        image_index: the same by position in the searched set.
        weights_sha256: hash of the weights that computed ``feats_hwc``, if known; compared with
            the cache's (a cache of the same model name built from other weights is refused).
        box: ``(row, col, h, w)`` bounding box of ``mask_hw > 0`` on the grid. A mask covering the
            whole grid is allowed: its box is the grid, so each image has one window (the whole
            map) and the search compares whole images.
    """

    model_name: str
    layer: str
    feats_hwc: np.ndarray
    mask_hw: np.ndarray
    image_id: str | None = None
    image_index: int | None = None
    weights_sha256: str | None = None
    box: tuple[int, int, int, int] = field(init=False)

    def __post_init__(self) -> None:
        feats = np.asarray(self.feats_hwc, dtype=np.float32)
        if feats.ndim != 3:
            raise SearchError(f"query features must be (H, W, C) for one image, got shape {feats.shape}; "
                              "take one image out of a (N, H, W, C) batch")
        if not np.all(np.isfinite(feats)):
            raise SearchError("query features contain NaN or infinity: recompute them")
        mask = np.asarray(self.mask_hw, dtype=np.float32)
        if mask.shape != feats.shape[:2]:
            raise SearchError(f"mask_hw has shape {mask.shape} but the query features' grid is {feats.shape[:2]} "
                              f"at layer {self.layer!r}: area-average the drawn mask with "
                              f"grid_mask(mask, {feats.shape[:2]})")
        if not np.all(np.isfinite(mask)) or mask.min() < 0 or mask.max() > 1:
            raise SearchError("mask_hw values must lie in [0, 1] (the covered fraction of each cell)")
        box = mask_box(mask)
        object.__setattr__(self, "feats_hwc", feats)
        object.__setattr__(self, "mask_hw", mask)
        object.__setattr__(self, "box", box)
        if self.norm == 0:
            raise SearchError(f"the query region has zero features at layer {self.layer!r} (all activations "
                              "under the mask are 0), so cosine similarity is undefined: draw the region "
                              "elsewhere or pick another layer")

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.feats_hwc.shape[0], self.feats_hwc.shape[1]

    @property
    def channels(self) -> int:
        return int(self.feats_hwc.shape[2])

    @property
    def box_mask_hw(self) -> np.ndarray:
        """``(bh, bw)`` float32: the mask cropped to :attr:`box`."""
        r, c, h, w = self.box
        return self.mask_hw[r:r + h, c:c + w]

    @property
    def vector_hwc(self) -> np.ndarray:
        """``(bh, bw, C)`` float32: ``q = feats[box] ⊙ mask[box]``, the vector VFS compares."""
        r, c, h, w = self.box
        return self.feats_hwc[r:r + h, c:c + w] * self.box_mask_hw[:, :, None]

    @property
    def norm(self) -> float:
        """``|q|`` computed in float64."""
        return float(np.sqrt(np.sum(self.vector_hwc.astype(np.float64) ** 2)))


def query_from_features(feats_hwc: np.ndarray, mask_hw: np.ndarray, *, model: str, layer: str,
                        image_id: str | None = None, image_index: int | None = None,
                        weights_sha256: str | None = None) -> Query:
    """A checked :class:`Query` from the query image's features and a mask.

    Args:
        feats_hwc: ``(H, W, C)`` features of the query image at ``layer`` (numpy or torch, any float).
        mask_hw: ``(H, W)`` grid mask in [0, 1], or a mask of any other size (e.g. the drawn
            pixel mask), which is area-averaged onto the grid with :func:`grid_mask`.
        model: the registry name of the model (compared with the cache's ``model_name``).
        layer: the layer name (must be one of the cache's ``layers``).
        image_id, image_index: the query image's place in the searched set, to exclude it.
        weights_sha256: the weights' hash, compared with the cache's when both are known.

    Raises:
        SearchError: wrong shapes, an empty mask, or a zero query vector.

    >>> feats = np.ones((7, 7, 4), np.float32)
    >>> query_from_features(feats, np.pad(np.ones((2, 2)), ((0, 5), (1, 4))), model="m", layer="l").box
    (0, 1, 2, 2)
    """
    feats = np.asarray(feats_hwc.detach().cpu() if hasattr(feats_hwc, "detach") else feats_hwc, dtype=np.float32)
    if feats.ndim != 3:
        raise SearchError(f"query features must be (H, W, C) for one image, got shape {feats.shape}")
    mask = np.asarray(mask_hw)
    if mask.ndim == 2 and mask.shape != feats.shape[:2]:
        mask = grid_mask(mask, feats.shape[:2])
    return Query(model, layer, feats, mask.astype(np.float32), image_id, image_index, weights_sha256)


def query_from_image(model: FeatureModel, image: Image.Image | np.ndarray, *, layer: str,
                     mask_hw: np.ndarray | None = None, box_xyxy: Sequence[float] | None = None,
                     image_id: str | None = None, image_index: int | None = None) -> Query:
    """A query from an image of any size: its features are computed like a cache's.

    The model squashes the whole image to its input size (as :func:`~featurelens.caches.build_cache`
    does), so a mask drawn on the image at its own size lines up with the feature grid.

    Args:
        model: the :class:`~featurelens.models.FeatureModel` that built the cache to search.
        image: PIL image or ``image_hwc_u8``, any size.
        layer: the layer to search.
        mask_hw: the region, either at the image's size ``(h, w)`` or on the layer's grid
            ``(H, W)``; bool, 0/1 or float in [0, 1] (see :func:`mask_from_image` for a PNG).
        box_xyxy: instead of a mask, a rectangle ``(x0, y0, x1, y1)`` in fractions of the image.
        image_id, image_index: the query image's place in the searched set, to exclude it.

    Raises:
        SearchError: neither or both of ``mask_hw`` and ``box_xyxy``, a mask of another size,
            an empty mask, or a zero query vector.
    """
    if (mask_hw is None) == (box_xyxy is None):
        raise SearchError("give the query region as exactly one of mask_hw (a drawn mask) or box_xyxy (fractions)")
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    feats_hwc = model.features([pil.convert("RGB")], [layer])[layer][0]
    grid_hw = feats_hwc.shape[:2]
    if box_xyxy is not None:
        grid = box_mask(box_xyxy, grid_hw)
    else:
        mask = np.asarray(mask_hw)
        if mask.ndim != 2 or mask.shape not in ((pil.height, pil.width), grid_hw):
            raise SearchError(f"the mask has shape {mask.shape} but the query image is {pil.height}×{pil.width} "
                              f"pixels (and the grid of layer {layer!r} is {grid_hw[0]}×{grid_hw[1]}): draw the "
                              "mask at the image's size")
        grid = grid_mask(mask, grid_hw)
    return query_from_features(feats_hwc, grid, model=model.name, layer=layer, image_id=image_id,
                               image_index=image_index, weights_sha256=model.spec.weights_sha256 or None)
