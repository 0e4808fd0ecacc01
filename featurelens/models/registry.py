"""The model registry: one frozen record per set of weights, registered once.

Names have the form ``arch.tag`` (``efficientnet_lite0.in1k``); the bare architecture
name (``efficientnet_lite0``) resolves to its default tag. Pages, caches and scenarios
refer to models only by these names.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

__all__ = [
    "LayerSpec", "ModelSpec", "UnknownModelError", "register_model", "list_models",
    "get_spec", "parse_layer_names", "registered", "resolve_model_name",
]


@dataclass(frozen=True)
class LayerSpec:
    """A feature tap: a short ``name`` (``stage4``), the dotted ``module`` path it hooks,
    its ``channels`` and ``stride`` (input pixels per feature cell), and a ``title`` for people."""

    name: str
    module: str
    channels: int
    stride: int
    title: str = ""

    def __post_init__(self) -> None:
        if self.channels <= 0 or self.stride <= 0:
            raise ValueError(f"layer {self.name!r}: channels and stride must be positive")
        if not self.module:
            raise ValueError(f"layer {self.name!r}: module path is required")

    def grid_hw(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Feature grid for an input size (ceil division, as 'same' padding gives)."""
        return (-(-input_hw[0] // self.stride), -(-input_hw[1] // self.stride))

    def label(self, input_hw: tuple[int, int]) -> str:
        """``"stage 4 · 14×14×80"``: what a student sees in a layer picker."""
        h, w = self.grid_hw(input_hw)
        return f"{self.title or self.name} · {h}×{w}×{self.channels}"


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about one set of weights before anything heavy is built.

    ``scaling`` names the input transform: ``"lite"`` is ``(x*255-127)/128``, ``"imagenet"``
    is ``(x-mean)/std`` with ``mean``/``std``, ``"xrv"`` is torchxrayvision's ``2048·x − 1024`` (also
    ``(x-mean)/std``; the network averages the channels); ``x`` is RGB in [0, 1] resized to ``input_hw``.
    ``offline`` is True when the weights ship in an installed package. ``classifier`` is False for
    a network whose outputs are not the 1000 ImageNet classes (no ImageNet labels are shown).
    """

    name: str
    arch: str
    description: str
    input_hw: tuple[int, int]
    scaling: str
    layers: tuple[LayerSpec, ...]
    default_layers: tuple[str, ...]
    weights_source: str
    weights_sha256: str
    license: str
    offline: bool
    builder: Callable[..., object] = field(repr=False, compare=False)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    paper: str = ""
    classifier: bool = True

    def __post_init__(self) -> None:
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate layer names in {names}")
        strides = [layer.stride for layer in self.layers]
        if strides != sorted(strides):
            raise ValueError(f"{self.name}: layer strides must never decrease, got {strides}")
        missing = set(self.default_layers) - set(names)
        if missing:
            raise ValueError(f"{self.name}: default layers {sorted(missing)} are not among {names}")
        if self.scaling not in ("lite", "imagenet", "xrv"):
            raise ValueError(f"{self.name}: unknown scaling {self.scaling!r}")

    @property
    def preprocessing(self) -> dict:
        """JSON description of the input transform; caches store and compare it."""
        return {"resize": list(self.input_hw), "resample": "bicubic", "crop": "none (whole image resized)",
                "scaling": self.scaling, "mean": list(self.mean), "std": list(self.std)}

    def transforms(self):
        """A new ``torchvision.transforms.v2`` pipeline: RGB PIL image → normalised float32
        ``(3, H, W)`` tensor (see :mod:`featurelens.models.preprocessing`)."""
        from .preprocessing import make_transforms  # torchvision is heavy: built on demand

        return make_transforms(self.input_hw, self.mean, self.std)

    def resolve_layers(self, layers: Sequence[str] | str | None) -> tuple[str, ...]:
        """The one place layer arguments are normalised: ``None`` → the standard set, ``"a,b"``
        or ``"a"`` → names, a sequence → itself; every name is checked, repeats and an empty
        list are refused.

        >>> from featurelens.models import get_spec
        >>> spec = get_spec("efficientnet_lite0")
        >>> spec.resolve_layers("stage3"), spec.resolve_layers("stage3, stage5"), spec.resolve_layers(None)[:2]
        (('stage3',), ('stage3', 'stage5'), ('stage2', 'stage3'))
        >>> spec.resolve_layers([])
        Traceback (most recent call last):
        ...
        ValueError: no layer names in []; give names such as 'stage3,stage5' (for efficientnet_lite0.in1k: pass None for its standard set stage2, stage3, stage5, stage7)
        """
        if layers is None:
            return self.default_layers
        try:
            names = parse_layer_names(layers)
        except ValueError as exc:
            raise ValueError(f"{exc} (for {self.name}: pass None for its standard set "
                             f"{', '.join(self.default_layers)})") from None
        for name in names:
            self.layer(name)
        return tuple(names)

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise UnknownLayerError(name, [layer.name for layer in self.layers], self.name)


def parse_layer_names(layers: Sequence[str] | str) -> tuple[str, ...]:
    """The one place layer arguments are parsed: ``"a, b"``, ``"a"`` or ``["a", "b"]`` → names.
    Empty entries are dropped; no names at all, or a repeated name, is an error.

    >>> parse_layer_names("stage3, stage5"), parse_layer_names("stage3"), parse_layer_names(("stage3",))
    (('stage3', 'stage5'), ('stage3',), ('stage3',))
    """
    if isinstance(layers, str):
        names = [name.strip() for name in layers.split(",")]
    else:
        names = [str(name).strip() for name in layers]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"no layer names in {layers!r}; give names such as 'stage3,stage5'")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"layers {names} repeat {', '.join(repeated)}; list each layer once")
    return tuple(names)


def _suggest(name: str, known: list[str], cutoff: float) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=cutoff)
    return f" Did you mean {', '.join(close)}?" if close else ""


class _HelpfulKeyError(KeyError):
    """A KeyError whose message is printed as written (KeyError would quote it)."""

    def __str__(self) -> str:
        return self.args[0]


class UnknownModelError(_HelpfulKeyError):
    """Raised for a model name that is not registered."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(f"unknown model {name!r}.{_suggest(name, known, 0.5)} Known models: {', '.join(known)} "
                         "(featurelens.list_models() or `python -m featurelens models`).")


class UnknownLayerError(_HelpfulKeyError):
    """Raised for a layer name a model does not have."""

    def __init__(self, name: str, known: list[str], model: str):
        super().__init__(f"model {model!r} has no layer {name!r}.{_suggest(name, known, 0.4)} "
                         f"Its layers: {', '.join(known)} (see list_layers(model)).")


_REGISTRY: dict[str, ModelSpec] = {}
_DEFAULT_TAG: dict[str, str] = {}


def register_model(spec_factory: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
    """Decorator: register the spec a zero-argument factory returns; refuses duplicates.
    The first tag registered for an architecture becomes its default."""
    spec = spec_factory()
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    if "." not in spec.name:
        raise ValueError(f"model name {spec.name!r} must have the form arch.tag")
    _REGISTRY[spec.name] = spec
    _DEFAULT_TAG.setdefault(spec.arch, spec.name)
    return spec_factory


@contextlib.contextmanager
def registered(spec: ModelSpec) -> Iterator[ModelSpec]:
    """Register ``spec`` for the duration of a ``with`` block (an experiment, a test), then
    remove it again; refuses a name that is already registered."""
    register_model(lambda: spec)
    try:
        yield spec
    finally:
        del _REGISTRY[spec.name]
        if _DEFAULT_TAG.get(spec.arch) == spec.name:
            del _DEFAULT_TAG[spec.arch]


def resolve_model_name(name: str) -> str:
    """Canonical ``arch.tag`` for a full name or a bare architecture name."""
    if name in _REGISTRY:
        return name
    if name in _DEFAULT_TAG:
        return _DEFAULT_TAG[name]
    raise UnknownModelError(name, sorted(_REGISTRY))


def get_spec(name: str) -> ModelSpec:
    """The registered :class:`ModelSpec` for ``name`` (``arch`` or ``arch.tag``)."""
    return _REGISTRY[resolve_model_name(name)]


def list_models(include: str = "*", exclude: str | None = None, offline_only: bool = False) -> list[str]:
    """Registered names matching glob ``include`` and not ``exclude``; offline ones first."""
    names = [n for n in _REGISTRY if fnmatch.fnmatch(n, include)
             and not (exclude and fnmatch.fnmatch(n, exclude))]
    if offline_only:
        names = [n for n in names if _REGISTRY[n].offline]
    return sorted(names, key=lambda n: (not _REGISTRY[n].offline, n))
