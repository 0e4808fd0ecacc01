"""The render loop: optimise an image parameterisation so that an objective falls, through a
model's gradient path (:meth:`~featurelens.models.FeatureModel.gradient_path`), with
transforms, regularisers, a seed, snapshot steps, a progress callback and cancellation between
steps. It returns images and never shows them.

>>> import featurelens as fl
>>> model = fl.load_model("efficientnet_lite0", device="cpu")
>>> result = render_vis(model, -1.0 * mean_activation("stage2"), noise_image((64, 64), torch.Generator().manual_seed(0)),
...                     steps=3, seed=0)
>>> result.image_hwc_u8.shape, result.steps_done, result.losses[-1] < result.losses[0]
((64, 64, 3), 3, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..models import FeatureModel
from .objectives import Objective, Schedule, mean_activation  # noqa: F401  (mean_activation: the doctest)
from .params import ImageParam, noise_image, to_image_hwc_u8  # noqa: F401
from .transforms import Regulariser, Transform, compose, standard_transforms

__all__ = ["RenderStep", "RenderResult", "render_vis", "LEARNING_RATE", "TIMING_PARTS"]

LEARNING_RATE = Schedule(0.05, 0.01)
"""Adam's learning rate on pixels in [0, 1], linear from start to end (Eq. 5)."""

TIMING_PARTS = ("forward", "backward", "regularisers", "optimiser")
"""What :attr:`RenderResult.seconds` splits a run's time into."""


@dataclass(frozen=True)
class RenderStep:
    """Progress after step ``step`` (1-based) of ``steps``: the ``loss`` and each term's
    weighted value (``terms``) before the step's update, and the image after it (uint8 HWC)."""

    step: int
    steps: int
    loss: float
    terms: dict[str, float]
    image_hwc_u8: np.ndarray


@dataclass(frozen=True)
class RenderResult:
    """A finished (or cancelled) run: the final ``image_hwc_u8``, ``snapshots`` ``{step:
    image_hwc_u8}`` at the steps asked (1-based), ``losses`` and ``terms`` per step done,
    ``steps_done``, whether it was ``cancelled``, and ``seconds`` spent in each of
    :data:`TIMING_PARTS` (plus ``total``)."""

    image_hwc_u8: np.ndarray
    snapshots: dict[int, np.ndarray]
    losses: list[float]
    terms: list[dict[str, float]]
    steps_done: int
    cancelled: bool
    seconds: dict[str, float] = field(default_factory=dict)


def render_vis(model: FeatureModel, objective: Objective, param: ImageParam, *,
               transforms: Sequence[Transform] | None = None, regularisers: Sequence[Regulariser] = (),
               steps: int = 200, snapshots: Sequence[int] = (), seed: int = 0,
               lr: Schedule | float = LEARNING_RATE,
               progress: Callable[[RenderStep], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> RenderResult:
    """Minimise ``objective`` over ``param`` (:func:`~featurelens.featureviz.pixel_image`) with
    Adam for ``steps`` steps, the learning rate ``lr`` scheduled from start to end.

    Each step renders the image, applies ``transforms`` (default: :func:`standard_transforms`
    drawing from a generator seeded with ``seed``), runs the model's gradient path to the
    objective's layers, takes an Adam step whose update the ``regularisers`` may reshape (the
    centre-biased mask), clamps the pixels to [0, 1], then lets the regularisers filter the image. ``progress`` gets a :class:`RenderStep` after every
    step; ``cancel()`` is asked between steps and ends the run early (``cancelled``). The same
    seed and inputs give a bit-identical image on the CPU.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    tensors, render = param
    generator = torch.Generator().manual_seed(int(seed))
    chain = compose(standard_transforms(generator) if transforms is None else transforms)
    rate = Schedule.of(lr)
    optimiser = torch.optim.Adam(tensors, lr=rate.start)
    wanted = set(int(s) for s in snapshots)
    seconds = dict.fromkeys(TIMING_PARTS, 0.0)
    losses: list[float] = []
    terms_log: list[dict[str, float]] = []
    shots: dict[int, np.ndarray] = {}
    cancelled = False
    started = time.perf_counter()
    with model.gradient_path(objective.layers) as forward:
        for step in range(steps):
            if cancel is not None and cancel():
                cancelled = True
                break
            fraction = step / (steps - 1) if steps > 1 else 1.0
            tick = time.perf_counter()
            acts = forward(chain(render()))
            terms = objective.terms(acts, fraction)
            loss = torch.stack(list(terms.values())).sum()
            seconds["forward"] += time.perf_counter() - tick
            tick = time.perf_counter()
            grads = torch.autograd.grad(loss, tensors)
            seconds["backward"] += time.perf_counter() - tick
            tick = time.perf_counter()
            before = [tensor.detach().clone() for tensor in tensors]
            for tensor, grad in zip(tensors, grads):
                tensor.grad = grad
            for group in optimiser.param_groups:
                group["lr"] = rate.at(fraction)
            optimiser.step()
            seconds["optimiser"] += time.perf_counter() - tick
            tick = time.perf_counter()
            with torch.no_grad():
                for tensor, old in zip(tensors, before):
                    update = tensor - old
                    for reg in regularisers:
                        update = reg.on_update(update, fraction)
                    tensor.copy_((old + update).clamp_(0.0, 1.0))
            for reg in regularisers:
                for tensor in tensors:
                    reg.on_image(tensor, step, fraction)
            seconds["regularisers"] += time.perf_counter() - tick
            losses.append(float(loss.detach()))
            terms_log.append({name: float(value.detach()) for name, value in terms.items()})
            if progress is not None or step + 1 in wanted:
                with torch.no_grad():
                    image = to_image_hwc_u8(render())
                if step + 1 in wanted:
                    shots[step + 1] = image
                if progress is not None:
                    progress(RenderStep(step + 1, steps, losses[-1], terms_log[-1], image))
    seconds["total"] = time.perf_counter() - started
    with torch.no_grad():
        final = to_image_hwc_u8(render())
    return RenderResult(final, shots, losses, terms_log, len(losses), cancelled, seconds)
