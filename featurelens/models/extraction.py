"""Reading intermediate activations by dotted module path, leaving the model as it was.

Layers are addressed by the path ``named_modules()`` gives (``blocks.3``, ``layer4``,
``features.denseblock2``). :func:`capture` hooks only the requested modules, inside a
context manager that removes the hooks and restores training mode even if the forward
pass raises.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn

__all__ = ["LayerInfo", "list_layers", "capture", "LayerNotFoundError", "ForwardStopped"]


class LayerNotFoundError(KeyError):
    """A module path that the model does not have."""

    def __init__(self, path: str, known: Sequence[str]):
        close = difflib.get_close_matches(path, list(known), n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        super().__init__(f"the model has no module {path!r}.{hint} "
                         "Call featurelens.list_layers(model) for every valid path.")

    def __str__(self) -> str:
        return self.args[0]


class ForwardStopped(Exception):
    """Raised by a :func:`capture` hook with ``stop_early`` once every requested layer has its
    output, so the rest of the network is not run (catch it around the forward call)."""


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer: its short ``name`` (the module path for a plain module), dotted
    module ``path``, module ``kind`` (class name), output ``channels`` and ``reduction``
    (input pixels per output cell); the last two are None where the output is no feature map."""

    name: str
    path: str
    kind: str
    channels: int | None
    reduction: int | None


def list_layers(model: nn.Module | Any, input_hw: tuple[int, int] = (224, 224)) -> list[LayerInfo]:
    """Every layer of ``model`` with its channels and reduction, in definition order.

    For a registered :class:`~featurelens.models.FeatureModel` these are its named taps. For a
    plain ``nn.Module``, every submodule is measured with one forward pass of a zero image of
    ``input_hw`` (on the module's device, without gradients; hooks removed and training mode
    restored afterwards). Token outputs ``(N, L, C)`` report the reduction of their square grid.

    >>> [(i.path, i.channels, i.reduction) for i in list_layers(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU()), (32, 32))]
    [('0', 8, 2), ('1', 8, 2)]
    """
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(model, "module"):
        return [LayerInfo(layer.name, layer.module, type(dict(model.module.named_modules())[layer.module]).__name__,
                          layer.channels, layer.stride) for layer in spec.layers]
    modules = [(path, mod) for path, mod in model.named_modules() if path]
    shapes: dict[str, tuple[int, ...]] = {}

    def make_hook(path: str):
        def hook(_mod: nn.Module, _inp: tuple, out: Any) -> None:
            out = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(out, torch.Tensor):
                shapes[path] = tuple(out.shape)
        return hook

    handles = [mod.register_forward_hook(make_hook(path)) for path, mod in modules]
    was_training = model.training
    parameter = next(iter(model.parameters()), None)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_hw, device=parameter.device if parameter is not None else "cpu"))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [LayerInfo(path, path, type(mod).__name__, *_channels_reduction(shapes.get(path), input_hw))
            for path, mod in modules]


def _channels_reduction(shape: tuple[int, ...] | None, input_hw: tuple[int, int]) -> tuple[int | None, int | None]:
    """``(channels, reduction)`` of an NCHW map or NLC tokens (square grid, prefix tokens ignored)."""
    if shape is None:
        return None, None
    if len(shape) == 4:
        return shape[1], max(1, round(input_hw[0] / shape[2]))
    if len(shape) == 3:
        for prefix in range(0, 9):  # class and register tokens come first
            side = math.isqrt(shape[1] - prefix)
            if side > 0 and side * side == shape[1] - prefix:
                return shape[2], max(1, round(input_hw[0] / side))
    return None, None


def _resolve(module: nn.Module, paths: Sequence[str]) -> dict[str, nn.Module]:
    modules = dict(module.named_modules())
    missing = [p for p in paths if p not in modules or p == ""]
    if missing:
        raise LayerNotFoundError(missing[0], [p for p in modules if p])
    return {p: modules[p] for p in paths}


@contextlib.contextmanager
def capture(module: nn.Module, paths: Sequence[str], *, this_thread_only: bool = False,
            stop_early: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Hook ``paths`` on ``module``; yields a dict that fills with each module's output
    (in the order of ``paths``) during forward passes run inside the block.

    The model is put in eval mode inside the block; afterwards every hook is removed and
    ``module.training`` is what it was before, also when the block raises.
    ``this_thread_only``: the hooks record only forward passes of the calling thread (another
    thread may run the same shared module meanwhile). ``stop_early``: as soon as every path has
    its output, the forward pass ends with :class:`ForwardStopped` (nothing deeper is computed;
    clear the dict before each pass).
    """
    targets = _resolve(module, paths)
    outputs: dict[str, torch.Tensor] = {}
    owner = threading.get_ident()

    def make_hook(path: str):
        def hook(_mod: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if this_thread_only and threading.get_ident() != owner:
                return
            outputs[path] = out[0] if isinstance(out, (tuple, list)) else out
            if stop_early and len(outputs) == len(targets):
                raise ForwardStopped(path)
        return hook

    handles = [mod.register_forward_hook(make_hook(p)) for p, mod in targets.items()]
    was_training = module.training
    module.eval()
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
