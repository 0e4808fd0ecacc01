"""Robustness transforms (image → image, applied before every forward pass) and the paper's
regularisers: Gaussian blur and split-Bregman TV denoising of the image every few steps, and a
centre-biased gradient mask, with strengths scheduled linearly from start to end (Eq. 5).

Random transforms draw from a ``torch.Generator`` they are given, never from global state, so a
seed fixes them. The standard sets are plain lists you copy and edit.

>>> g = torch.Generator().manual_seed(0)
>>> image = torch.arange(16.0).view(1, 1, 4, 4)
>>> out = compose(standard_transforms(g, pixels=1))(image)
>>> tuple(out.shape), sorted(out.flatten().tolist()) == sorted(image.flatten().tolist())
((1, 1, 4, 4), True)
>>> [r.name for r in standard_regularisers()]
['Gaussian blur', 'TV denoising (split Bregman)', 'centre-biased gradient mask']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from skimage.filters import gaussian
from skimage.restoration import denoise_tv_bregman

from .objectives import Schedule
from .params import pixels_hwc, set_pixels_hwc

__all__ = ["Transform", "jitter", "compose", "standard_transforms", "Regulariser", "ImageFilter", "GradientMask",
           "gaussian_blur", "tv_denoise", "centre_mask", "standard_regularisers", "centre_weights_hw"]

Transform = Callable[[torch.Tensor], torch.Tensor]
"""Image → image: float32 ``(N, 3, H, W)`` in, same shape out, differentiable."""


def jitter(pixels: int, generator: torch.Generator) -> Transform:
    """Shift the image by up to ``pixels`` in x and y (a cyclic roll; offsets from ``generator``)."""
    def shift(image_nchw: torch.Tensor) -> torch.Tensor:
        dy, dx = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=generator))
        return torch.roll(image_nchw, shifts=(dy, dx), dims=(2, 3))
    return shift


def compose(transforms: Sequence[Transform]) -> Transform:
    """The transforms applied in order."""
    def chained(image_nchw: torch.Tensor) -> torch.Tensor:
        for transform in transforms:
            image_nchw = transform(image_nchw)
        return image_nchw
    return chained


def standard_transforms(generator: torch.Generator, pixels: int = 8) -> list[Transform]:
    """The default transforms (jitter, as the paper's regularisation): a new list each call."""
    return [jitter(pixels, generator)]


class Regulariser:
    """Something the render loop applies besides the objective: :meth:`on_update` may change the
    step the optimiser just took on the pixels, :meth:`on_image` the pixels after it (``step``
    is 0-based). Subclasses have a ``name``, for people and timing tables."""

    def on_image(self, pixels_nchw: torch.Tensor, step: int, fraction: float) -> None:
        """Change ``pixels_nchw`` ``(1, 3, H, W)`` in place (default: nothing)."""

    def on_update(self, update_nchw: torch.Tensor, fraction: float) -> torch.Tensor:
        """The pixel update to use instead of ``update_nchw`` (default: unchanged)."""
        return update_nchw


@dataclass(frozen=True)
class ImageFilter(Regulariser):
    """Every ``every`` steps, replace the image with ``fn(image_hwc, strength)`` (float
    ``(H, W, 3)`` in [0, 1]), ``strength`` scheduled from start to end."""

    name: str
    fn: Callable[[np.ndarray, float], np.ndarray]
    strength: Schedule
    every: int

    def on_image(self, pixels_nchw: torch.Tensor, step: int, fraction: float) -> None:
        if self.every > 0 and (step + 1) % self.every == 0:
            set_pixels_hwc(pixels_nchw, np.clip(self.fn(pixels_hwc(pixels_nchw), self.strength.at(fraction)), 0.0, 1.0))


def _blur(image_hwc: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian(image_hwc, sigma=sigma, channel_axis=-1, preserve_range=True) if sigma > 0 else image_hwc


def _tv(image_hwc: np.ndarray, weight: float) -> np.ndarray:
    return denoise_tv_bregman(image_hwc, weight=weight, channel_axis=-1)


def gaussian_blur(sigma: Schedule = Schedule(0.8, 0.2), every: int = 4) -> ImageFilter:
    """Blur with a Gaussian of ``sigma`` pixels every ``every`` steps (``skimage.filters.gaussian``)."""
    return ImageFilter("Gaussian blur", _blur, sigma, every)


def tv_denoise(weight: Schedule = Schedule(20.0, 80.0), every: int = 10) -> ImageFilter:
    """Total-variation denoising by split Bregman (``skimage.restoration.denoise_tv_bregman``)
    every ``every`` steps. Its ``weight`` is the fidelity: smaller denoises more, so a rising
    weight is a falling strength."""
    return ImageFilter("TV denoising (split Bregman)", _tv, weight, every)


def centre_weights_hw(hw: tuple[int, int], sigma: float) -> np.ndarray:
    """``(H, W)`` float32 Gaussian bump, 1 at the centre; ``sigma`` as a fraction of each side."""
    ys = (np.arange(hw[0], dtype=np.float32) + 0.5) / hw[0] - 0.5
    xs = (np.arange(hw[1], dtype=np.float32) + 0.5) / hw[1] - 0.5
    s = max(float(sigma), 1e-3)
    return np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * s * s)).astype(np.float32)


@dataclass(frozen=True)
class GradientMask(Regulariser):
    """Multiply each pixel update by a centre-biased Gaussian whose width (``sigma``, a fraction
    of the image side) is scheduled: wide at first, narrower at the end (Nguyen et al.). The mask
    scales the optimiser's step rather than the raw gradient, which Adam would normalise away."""

    sigma: Schedule
    name: str = "centre-biased gradient mask"

    def on_update(self, update_nchw: torch.Tensor, fraction: float) -> torch.Tensor:
        mask_hw = torch.from_numpy(centre_weights_hw(tuple(update_nchw.shape[2:]), self.sigma.at(fraction)))
        return update_nchw * mask_hw.to(update_nchw.device)


def centre_mask(sigma: Schedule = Schedule(1.0, 0.35)) -> GradientMask:
    """The centre-biased gradient mask (see :class:`GradientMask`)."""
    return GradientMask(sigma)


def standard_regularisers() -> list[Regulariser]:
    """The paper's regularisers with this app's defaults: a new list each call."""
    return [gaussian_blur(), tv_denoise(), centre_mask()]
