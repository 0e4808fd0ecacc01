"""Tensor layouts: the one place where axes are moved.

FeatureLens stores and passes features channels-last. Names carry the layout:
``feats_nhwc`` is ``(N, H, W, C)``, ``image_hwc_u8`` is ``(H, W, 3)`` uint8,
``tokens_nlc`` is ``(N, L, C)``. Model adapters and this module are the only code
that permutes axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Layout", "FEATURES_NHWC", "IMAGES_NHWC", "PER_IMAGE_N", "nchw_to_nhwc", "nhwc_to_nchw", "tokens_nlc_to_nhwc",
           "image_hwc_to_chw_tensor"]


def nchw_to_nhwc(feats_nchw: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` → contiguous ``(N, H, W, C)``.

    >>> nchw_to_nhwc(torch.zeros(2, 5, 3, 4)).shape
    torch.Size([2, 3, 4, 5])
    """
    if feats_nchw.ndim != 4:
        raise ValueError(f"expected a 4-D (N, C, H, W) tensor, got shape {tuple(feats_nchw.shape)}")
    return feats_nchw.permute(0, 2, 3, 1).contiguous()


def nhwc_to_nchw(images_nhwc: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, C)`` → contiguous ``(N, C, H, W)`` (what a network's input takes).

    >>> nhwc_to_nchw(torch.zeros(2, 3, 4, 5)).shape
    torch.Size([2, 5, 3, 4])
    """
    if images_nhwc.ndim != 4:
        raise ValueError(f"expected a 4-D (N, H, W, C) tensor, got shape {tuple(images_nhwc.shape)}")
    return images_nhwc.permute(0, 3, 1, 2).contiguous()


def tokens_nlc_to_nhwc(tokens_nlc: torch.Tensor, num_prefix_tokens: int = 0,
                       grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """ViT tokens ``(N, L, C)`` → patch grid ``(N, H, W, C)``, dropping the first
    ``num_prefix_tokens`` (class/register tokens).

    The grid is ``grid_hw`` when given, else the square root of the patch count.

    >>> tokens_nlc_to_nhwc(torch.zeros(1, 1 + 196, 8), num_prefix_tokens=1).shape
    torch.Size([1, 14, 14, 8])
    """
    if tokens_nlc.ndim != 3:
        raise ValueError(f"expected (N, L, C) tokens, got shape {tuple(tokens_nlc.shape)}")
    patches_nlc = tokens_nlc[:, num_prefix_tokens:, :]
    n, length, c = patches_nlc.shape
    if grid_hw is None:
        side = math.isqrt(length)
        if side * side != length:
            raise ValueError(f"{length} patch tokens do not form a square grid; pass grid_hw")
        grid_hw = (side, side)
    if grid_hw[0] * grid_hw[1] != length:
        raise ValueError(f"grid {grid_hw} does not hold {length} patch tokens")
    return patches_nlc.reshape(n, grid_hw[0], grid_hw[1], c).contiguous()


def image_hwc_to_chw_tensor(image_hwc_u8: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` array → float32 ``(3, H, W)`` tensor in [0, 1]."""
    if image_hwc_u8.ndim != 3 or image_hwc_u8.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {image_hwc_u8.shape}")
    return torch.from_numpy(np.array(image_hwc_u8, dtype=np.uint8, order="C", copy=True)).permute(2, 0, 1).float().div_(255.0)


@dataclass(frozen=True)
class Layout:
    """A named array layout: ``name`` as recorded in cache attributes, ``dims`` as zarr
    ``dimension_names``.

    >>> FEATURES_NHWC.name, FEATURES_NHWC.dims
    ('NHWC', ('image', 'y', 'x', 'channel'))
    """

    name: str
    dims: tuple[str, ...]


FEATURES_NHWC = Layout("NHWC", ("image", "y", "x", "channel"))
"""Feature maps of many images, channels last: how caches store features."""

IMAGES_NHWC = Layout("NHWC", ("image", "y", "x", "rgb"))
"""RGB images of many pictures (thumbnails), uint8."""

PER_IMAGE_N = Layout("N", ("image",))
"""One value per image (metadata columns)."""
