"""Objectives as named parts that add up (Lucent's design): each is a loss to *minimise*, read
from the activations of a forward pass, and combines with ``+``, ``-`` and numbers or
:class:`Schedule` weights. The Mind's Eye's loss (Eq. 4) is written as it reads::

    robust_distance(layer, target_c, channels) - channel_dot(layer, target_c, channels)
        + Schedule(1e-3, 1e-4) * activation_l1(previous_layer)

Activations are ``{layer: feats_nhwc}`` float32 tensors ``(1, H, W, C)`` with autograd.

>>> import torch
>>> a, b = mean_activation("stage3"), mean_activation("stage5")
>>> objective = a - 0.5 * b + Schedule(1.0, 0.0) * b
>>> objective.describe()
'mean of stage3 − 0.5 × mean of stage5 + (1 → 0) × mean of stage5'
>>> acts = {"stage3": torch.ones(1, 2, 2, 4), "stage5": torch.full((1, 1, 1, 8), 2.0)}
>>> float(objective(acts, 0.0)), float(objective(acts, 1.0)), objective.layers
(2.0, 0.0, ('stage3', 'stage5'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .robust import barron_loss

__all__ = ["Schedule", "Objective", "Activations", "objective", "mean_activation", "channel_dot", "robust_distance",
           "activation_l1", "facet_loss", "pooled_channels", "L1_WEIGHT"]

Activations = Mapping[str, torch.Tensor]
"""``{layer: feats_nhwc}``: float32 ``(1, H, W, C)`` tensors of one forward pass, with autograd."""


@dataclass(frozen=True)
class Schedule:
    """A value that moves linearly from ``start`` (first step) to ``end`` (last step), the
    paper's Eq. 5 for the learning rate and the regulariser strengths.

    >>> [Schedule(1e-3, 1e-4).at(t) for t in (0.0, 1.0)]
    [0.001, 0.0001]
    >>> Schedule.of(0.5).at(0.7)
    0.5
    """

    start: float
    end: float

    @staticmethod
    def of(value: "float | Schedule") -> "Schedule":
        """A number as a constant schedule; a schedule as itself."""
        return value if isinstance(value, Schedule) else Schedule(float(value), float(value))

    def at(self, fraction: float) -> float:
        """The value at ``fraction`` of the run (0 = first step, 1 = last step)."""
        f = min(1.0, max(0.0, fraction))
        return self.start * (1.0 - f) + self.end * f

    def __str__(self) -> str:
        return f"{self.start:g}" if self.start == self.end else f"({self.start:g} → {self.end:g})"


L1_WEIGHT = Schedule(1e-3, 1e-4)
"""The paper's λ: the L1 penalty on the previous layer, linear from 1e-3 to 1e-4."""

_Term = tuple[Schedule, str, str, tuple[str, ...], Callable[[Activations], torch.Tensor]]


class Objective:
    """A loss to minimise: a weighted sum of named terms. ``objective(acts, fraction)`` is the
    scalar loss at ``fraction`` of the run; :meth:`terms` gives each term's weighted value by
    name; ``layers`` are the layers the terms read; :meth:`describe` says it in words."""

    def __init__(self, terms: Sequence[_Term]):
        self._terms = tuple(terms)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer for term in self._terms for layer in term[3]))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(term[1] for term in self._terms)

    def terms(self, acts: Activations, fraction: float) -> dict[str, torch.Tensor]:
        """``{name: weight × value}`` (scalar tensors) of every term; repeated names add up."""
        out: dict[str, torch.Tensor] = {}
        for weight, name, _, _, fn in self._terms:
            value = weight.at(fraction) * fn(acts)
            out[name] = out[name] + value if name in out else value
        return out

    def __call__(self, acts: Activations, fraction: float = 0.0) -> torch.Tensor:
        return torch.stack(list(self.terms(acts, fraction).values())).sum()

    def describe(self) -> str:
        words = []
        for i, (weight, _, description, _, _) in enumerate(self._terms):
            negative = weight.start < 0 and weight.end <= 0
            shown = Schedule(-weight.start, -weight.end) if negative else weight
            factor = "" if (shown.start, shown.end) == (1.0, 1.0) else f"{shown} × "
            sign = ("− " if negative else "") if i == 0 else (" − " if negative else " + ")
            words.append(f"{sign}{factor}{description}")
        return "".join(words)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self._terms + other._terms)

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    def __mul__(self, weight: "float | Schedule") -> "Objective":
        w = Schedule.of(weight)
        return Objective([(Schedule(w.start * s.start, w.end * s.end), *rest) for s, *rest in self._terms])

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.describe()!r})"


def objective(name: str, description: str, layers: Sequence[str], fn: Callable[[Activations], torch.Tensor]) -> Objective:
    """One named term: ``fn(acts)`` → scalar tensor, reading ``layers``."""
    return Objective([(Schedule(1.0, 1.0), name, description, tuple(layers), fn)])


def pooled_channels(feats_nhwc: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, C)`` → ``(N, k)``: the spatial mean of the ``channels`` ``(k,)``."""
    return feats_nhwc.mean(dim=(1, 2))[:, channels]


def mean_activation(layer: str) -> Objective:
    """The mean activation of a layer (a plain activation-maximisation term when subtracted)."""
    return objective("mean", f"mean of {layer}", [layer], lambda acts: acts[layer].mean())


def _target(target_c: np.ndarray | torch.Tensor, channels: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, float]:
    target = torch.as_tensor(np.asarray(target_c, np.float32))
    idx = torch.as_tensor(np.asarray(channels, np.int64))
    if idx.numel() == 0:
        raise ValueError("no channels given: pass the target's top-k channels (Facet.top_channels(k))")
    norm = float(target[idx].abs().mean()) or 1.0
    return target[idx] / norm, idx, norm


def channel_dot(layer: str, target_c: np.ndarray, channels: Sequence[int]) -> Objective:
    """Eq. 2, DM: the channel-wise dot product of the produced activations (spatial mean) and the
    target over the ``channels`` (k), both divided by the target's mean magnitude there and
    averaged over k (so its size does not depend on the layer or on k)."""
    target_k, idx, norm = _target(target_c, channels)

    def dm(acts: Activations) -> torch.Tensor:
        produced = pooled_channels(acts[layer], idx.to(acts[layer].device)) / norm
        return (produced * target_k.to(produced.device)).mean()

    return objective("dot", f"dot(top-{idx.numel()} of {layer}, target)", [layer], dm)


def robust_distance(layer: str, target_c: np.ndarray, channels: Sequence[int], shape: float = 2.0,
                    scale: float = 0.5) -> Objective:
    """Eq. 3, AD: Barron's loss (``shape``, ``scale``) of the distance between the produced
    activations (spatial mean) and the target over the ``channels``: the mean absolute
    difference, in units of the target's mean magnitude there."""
    target_k, idx, norm = _target(target_c, channels)

    def ad(acts: Activations) -> torch.Tensor:
        produced = pooled_channels(acts[layer], idx.to(acts[layer].device)) / norm
        distance = (produced - target_k.to(produced.device)).abs().mean()
        return barron_loss(distance, shape, scale)

    return objective("distance", f"ρ(|top-{idx.numel()} of {layer} − target|; α={shape:g}, c={scale:g})", [layer], ad)


def activation_l1(layer: str) -> Objective:
    """The L1 penalty on a layer's activations (mean absolute value; Eq. 4's last term)."""
    return objective("l1", f"|{layer}|₁", [layer], lambda acts: acts[layer].abs().mean())


def facet_loss(layer: str, target_c: np.ndarray, channels: Sequence[int], previous_layer: str | None = None, *,
               shape: float = 2.0, scale: float = 0.5, l1_weight: Schedule = L1_WEIGHT) -> Objective:
    """The Mind's Eye's loss, Eq. 4: ``AD − DM + λ·|previous layer|₁`` (no L1 term without a
    previous layer)."""
    loss = robust_distance(layer, target_c, channels, shape, scale) - channel_dot(layer, target_c, channels)
    return loss + l1_weight * activation_l1(previous_layer) if previous_layer else loss
