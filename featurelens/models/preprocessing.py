"""Input transforms, built from a model's registry record (never guessed from class names).

A model sees the whole image resized (no crop) to its input size with bicubic resampling,
scaled to [0, 1] and normalised with the record's mean and std::

    RGB PIL image → Resize(input_hw, bicubic) → ToImage → ToDtype(float32, scale) → Normalize(mean, std)

>>> from PIL import Image
>>> pipeline = make_transforms((4, 6), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
>>> x_chw = pipeline(Image.new("RGB", (12, 8), (255, 0, 128)))
>>> tuple(x_chw.shape), [round(float(v), 3) for v in x_chw[:, 0, 0]]
((3, 4, 6), [1.0, -1.0, 0.004])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms import InterpolationMode, v2

__all__ = ["make_resize", "make_normalize", "make_transforms"]


def make_resize(input_hw: tuple[int, int]) -> v2.Resize:
    """Whole-image bicubic resize to exactly ``input_hw`` (PIL in, PIL out)."""
    return v2.Resize(tuple(input_hw), interpolation=InterpolationMode.BICUBIC)


def make_normalize(mean: Sequence[float], std: Sequence[float]) -> v2.Normalize:
    """``(x − mean) / std`` per channel of a float ``(…, 3, H, W)`` tensor in [0, 1]."""
    return v2.Normalize(list(mean), list(std))


def make_transforms(input_hw: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """The full pipeline: RGB PIL image → normalised float32 ``(3, H, W)`` tensor."""
    return v2.Compose([make_resize(input_hw), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       make_normalize(mean, std)])
