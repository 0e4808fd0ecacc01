"""Barron's general and adaptive robust loss (CVPR 2019), the distance term of The Mind's Eye.

``ρ(x, α, c)`` with shape ``α`` and scale ``c > 0``; special values of ``α`` give familiar losses:
2 is L2 (``½(x/c)²``), 1 pseudo-Huber/Charbonnier, 0 Cauchy/Lorentzian (``log(½(x/c)² + 1)``),
−2 Geman-McClure, −∞ Welsch/Leclerc (``1 − exp(−½(x/c)²)``). The general formula is singular at
0 and 2 and undefined at ±∞, so those values use their closed forms (Barron's Eq. 2–3).

>>> import torch
>>> [round(float(barron_loss(torch.tensor(3.0), shape, 1.5)), 4) for shape in (2.0, 1.0, 0.0, float("-inf"))]
[2.0, 1.2361, 1.0986, 0.8647]
"""

from __future__ import annotations

import math

import torch

__all__ = ["barron_loss"]


def barron_loss(x: torch.Tensor, shape: float, scale: float) -> torch.Tensor:
    """Barron's ``ρ(x, α=shape, c=scale)`` elementwise on a tensor ``x`` of any shape (same
    shape, dtype and device out; differentiable in ``x``). ``shape`` may be ``±inf``; ``scale``
    must be positive. Shapes within 1e-6 of 0 or 2 use the closed forms."""
    if not scale > 0:
        raise ValueError(f"the scale of Barron's loss must be positive, got {scale!r}; try 1.0")
    if math.isnan(shape):
        raise ValueError("the shape of Barron's loss is NaN; pass a number or ±inf (2 is L2, 0 Cauchy)")
    squared = (x / scale) ** 2
    if shape == float("-inf"):
        return -torch.expm1(-0.5 * squared)
    if shape == float("inf"):
        return torch.expm1(0.5 * squared)
    if abs(shape - 2.0) < 1e-6:
        return 0.5 * squared
    if abs(shape) < 1e-6:
        return torch.log1p(0.5 * squared)
    gap = abs(shape - 2.0)
    return gap / shape * ((squared / gap + 1.0) ** (shape / 2.0) - 1.0)
