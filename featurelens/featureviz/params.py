"""Image parameterisations: a pair of the tensors to optimise and a function that renders the
image from them (Lucent's design), here in pixel space, as The Mind's Eye optimises pixels.

>>> tensors, render = pixel_image(np.full((4, 6, 3), 0.25, np.float32))
>>> [tuple(t.shape) for t in tensors], tuple(render().shape), float(render().detach().max())
([(1, 3, 4, 6)], (1, 3, 4, 6), 0.25)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..models import nchw_to_nhwc, nhwc_to_nchw

__all__ = ["ImageParam", "pixel_image", "noise_image", "to_image_hwc_u8", "pixels_hwc", "set_pixels_hwc"]

ImageParam = tuple[list[torch.Tensor], Callable[[], torch.Tensor]]
"""``(tensors to optimise, render)``: ``render()`` gives float32 RGB ``(1, 3, H, W)`` in [0, 1]."""


def pixel_image(start_hwc: np.ndarray, device: str | torch.device = "cpu") -> ImageParam:
    """Optimise the pixels themselves, starting from ``start_hwc`` (float ``(H, W, 3)`` in
    [0, 1]); the one tensor is ``(1, 3, H, W)`` and ``render`` clamps it to [0, 1]."""
    start = np.asarray(start_hwc, np.float32)
    if start.ndim != 3 or start.shape[2] != 3:
        raise ValueError(f"expected a start image (H, W, 3) in [0, 1], got shape {start.shape}")
    pixels = nhwc_to_nchw(torch.from_numpy(np.clip(start, 0.0, 1.0))[None]).to(device).requires_grad_(True)
    return [pixels], lambda: pixels.clamp(0.0, 1.0)


def noise_image(hw: tuple[int, int], generator: torch.Generator, device: str | torch.device = "cpu",
                spread: float = 0.1) -> ImageParam:
    """Pixels starting as grey plus uniform noise of ``±spread`` drawn from ``generator``."""
    noise = (torch.rand((*hw, 3), generator=generator) * 2.0 - 1.0) * spread
    return pixel_image((0.5 + noise).numpy(), device)


def pixels_hwc(pixels_nchw: torch.Tensor) -> np.ndarray:
    """The first image of ``(N, 3, H, W)`` pixels → float32 ``(H, W, 3)`` numpy (CPU copy)."""
    return nchw_to_nhwc(pixels_nchw.detach()[:1].float())[0].cpu().numpy()


def set_pixels_hwc(pixels_nchw: torch.Tensor, image_hwc: np.ndarray) -> None:
    """Write ``(H, W, 3)`` values into the first image of ``pixels_nchw``, in place, no gradient."""
    with torch.no_grad():
        pixels_nchw[:1].copy_(nhwc_to_nchw(torch.from_numpy(np.asarray(image_hwc, np.float32))[None]))


def to_image_hwc_u8(pixels_nchw: torch.Tensor) -> np.ndarray:
    """Rendered pixels ``(N, 3, H, W)`` in [0, 1] → the first as ``(H, W, 3)`` uint8."""
    return np.rint(np.clip(pixels_hwc(pixels_nchw), 0.0, 1.0) * 255.0).astype(np.uint8)
