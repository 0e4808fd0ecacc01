"""One model API over every architecture: :func:`load_model` by registry name, or
:func:`wrap_module` for any ``torch.nn.Module``.

A :class:`FeatureModel` knows its preprocessing, its named layers (with channels and
stride) and returns features for several layers in one forward pass, channels-last.

>>> model = load_model("efficientnet_lite0", device="cpu")
>>> feats = model.features([np.zeros((64, 80, 3), np.uint8)], ["stage3", "stage5"])
>>> {name: f.shape for name, f in feats.items()}
{'stage3': (1, 28, 28, 40), 'stage5': (1, 14, 14, 112)}
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..images import to_rgb_image
from . import xrv, zoo  # noqa: F401  (register the models)
from .devices import resolve_device
from .extraction import ForwardStopped, capture
from .layouts import nchw_to_nhwc, tokens_nlc_to_nhwc
from .preprocessing import make_resize
from .registry import LayerSpec, ModelSpec, get_spec
from .weights import weights_cache_dir

__all__ = ["FeatureModel", "Prediction", "load_model", "wrap_module", "imagenet_categories",
           "weights_available"]

ImageLike = Image.Image | np.ndarray


@dataclass(frozen=True)
class Prediction:
    """One class score: ImageNet ``index``, its ``label`` and softmax ``probability``."""

    index: int
    label: str
    probability: float


@functools.lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the standard index order."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def weights_available(name: str) -> bool:
    """True if ``name`` can be loaded without a network: weights ship in a package, or were downloaded before."""
    spec = get_spec(name)
    if spec.offline:
        return True
    return (weights_cache_dir() / spec.weights_source.rsplit("/", 1)[-1]).is_file()


class FeatureModel:
    """A network plus everything needed to feed it and read its layers.

    ``layers`` lists the :class:`LayerSpec` taps in depth order. Features come out as
    float32 ``feats_nhwc`` on the CPU, whatever device the network runs on. Calls are
    serialised by a lock, so one instance can be shared by the threads of a web app.
    """

    def __init__(self, module: nn.Module, spec: ModelSpec, device: torch.device,
                 num_prefix_tokens: int = 0, has_classifier: bool = True):
        self.module = module
        self.spec = spec
        self.device = device
        self.num_prefix_tokens = num_prefix_tokens
        self.has_classifier = has_classifier
        self._lock = threading.Lock()
        self._gradient_lock = threading.Lock()
        self._transforms = spec.transforms()
        self._resize = make_resize(spec.input_hw)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.spec.input_hw

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return self.spec.layers

    def layer(self, name: str) -> LayerSpec:
        """The :class:`LayerSpec` called ``name``; the error lists the valid names."""
        return self.spec.layer(name)

    def layer_label(self, name: str) -> str:
        """``"stage 4 · 14×14×80"``."""
        return self.layer(name).label(self.input_hw)

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """RGB images (PIL or ``image_hwc_u8``) → normalised float32 ``(N, 3, H, W)`` on the CPU,
        through the registry record's transforms (whole image resized to ``input_hw``, bicubic)."""
        if len(images) == 0:
            raise ValueError("no images given: pass at least one image")
        return torch.stack([self._transforms(to_rgb_image(image)) for image in images])

    def resize(self, image: ImageLike) -> np.ndarray:
        """One image → ``image_hwc_u8`` at the model's input size (what the model sees)."""
        return np.asarray(self._resize(to_rgb_image(image)))

    def run(self, batch_nchw: torch.Tensor, layers: Sequence[str],
            with_logits: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One forward pass of a batch ``(N, 3, H, W)`` from :meth:`preprocess` (normalised).

        Returns ``{layer: feats_nhwc}`` (float32, CPU, in the order asked) and the logits
        ``(N, classes)`` when ``with_logits`` (else None).
        """
        specs = [self.layer(name) for name in layers]
        paths = list(dict.fromkeys(spec.module for spec in specs))
        with self._lock, torch.inference_mode(), capture(self.module, paths) as raw:
            logits = self.module(batch_nchw.to(self.device, non_blocking=True))
            feats = {spec.name: self._to_nhwc(raw[spec.module]) for spec in specs}
        return feats, (logits.float().cpu() if with_logits else None)

    @contextlib.contextmanager
    def gradient_path(self, layers: Sequence[str]) -> Iterator[Callable[[torch.Tensor], dict[str, torch.Tensor]]]:
        """Gradients through the model, for feature visualisation; inference is unchanged.

        Yields ``forward(pixels_nchw)``: float32 RGB pixels ``(N, 3, H, W)`` in [0, 1] on
        :attr:`device` (normalised inside with the registry record's mean/std) →
        ``{layer: feats_nhwc}`` float32 on :attr:`device`, differentiable with respect to the
        pixels. The pass stops after the last requested layer. Inside the block the module is in
        eval mode and its parameters do not require gradients (only the pixels get them); hooks
        record this thread's passes only, so other threads keep using :meth:`run` meanwhile. On
        exit the hooks are removed and the training mode and every parameter's ``requires_grad``
        are what they were, also when the block raises. One gradient path per model at a time.
        """
        specs = [self.layer(name) for name in layers]
        paths = list(dict.fromkeys(spec.module for spec in specs))
        mean = torch.tensor(self.spec.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        with self._gradient_lock:
            params = list(self.module.parameters())
            wanted = [p.requires_grad for p in params]
            try:
                for p in params:
                    p.requires_grad_(False)
                with capture(self.module, paths, this_thread_only=True, stop_early=True) as raw:

                    def forward(pixels_nchw: torch.Tensor) -> dict[str, torch.Tensor]:
                        raw.clear()
                        with torch.enable_grad():
                            try:
                                self.module((pixels_nchw - mean) / std)
                            except ForwardStopped:
                                pass
                            return {spec.name: self._grid_nhwc(raw[spec.module]) for spec in specs}

                    yield forward
            finally:
                for p, flag in zip(params, wanted):
                    p.requires_grad_(flag)

    def _grid_nhwc(self, out: torch.Tensor) -> torch.Tensor:
        """A layer output (feature map or tokens) → float32 ``(N, H, W, C)`` where it is."""
        if out.ndim == 4:
            return nchw_to_nhwc(out.float())
        if out.ndim == 3:
            grid = getattr(getattr(self.module, "patch_embed", None), "grid_size", None)
            grid_hw = tuple(grid) if grid else None
            # the patch embedding itself has no class/register tokens yet
            prefix = 0 if grid_hw and out.shape[1] == grid_hw[0] * grid_hw[1] else self.num_prefix_tokens
            return tokens_nlc_to_nhwc(out.float(), prefix, grid_hw)
        raise ValueError(f"a layer output of shape {tuple(out.shape)} is neither a feature map nor tokens")

    def _to_nhwc(self, out: torch.Tensor) -> torch.Tensor:
        return self._grid_nhwc(out).cpu()

    def features(self, images: Sequence[ImageLike], layers: Sequence[str] | None = None,
                 batch_size: int = 16) -> dict[str, np.ndarray]:
        """Images → ``{layer: feats_nhwc}`` float32 numpy arrays, in the order asked.

        ``layers``: names, one name, ``"a,b"``, or None for the model's standard set
        (see :meth:`~featurelens.models.ModelSpec.resolve_layers`)."""
        layers = list(self.spec.resolve_layers(layers))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        for start in range(0, len(images), batch_size):
            feats, _ = self.run(self.preprocess(images[start:start + batch_size]), layers)
            for name in layers:
                parts[name].append(feats[name].numpy())
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def classify(self, images: Sequence[ImageLike], topk: int = 5) -> list[list[Prediction]]:
        """Top-``topk`` ImageNet predictions for each image."""
        _, logits = self.run(self.preprocess(images), [], with_logits=True)
        return self.predictions_from_logits(logits, topk)

    def predictions_from_logits(self, logits: torch.Tensor, topk: int = 5) -> list[list[Prediction]]:
        """``(N, 1000)`` logits → top-``topk`` :class:`Prediction` lists."""
        if not self.has_classifier:
            raise ValueError(f"{self.name} has no ImageNet classifier head")
        names = imagenet_categories()
        probs = logits.softmax(dim=-1)
        top = probs.topk(topk, dim=-1)
        return [[Prediction(int(i), names[int(i)], float(p)) for p, i in zip(ps, idx)]
                for ps, idx in zip(top.values, top.indices)]


def load_model(name: str, device: str | torch.device | None = None, *,
               weights_path: str | Path | None = None,
               progress: Callable[[int, int], None] | None = None) -> FeatureModel:
    """Build the registered model ``name`` (``arch`` or ``arch.tag``) with its real weights.

    ``device`` defaults to cuda → mps → cpu. ``weights_path`` replaces the registered
    weights file (it must still load strictly). Online-only models download their weights
    once; without a network they raise :class:`~featurelens.models.WeightsUnavailableError`
    naming the offline models.
    """
    spec = get_spec(name)
    target = resolve_device(device)
    module = spec.builder(weights_path=weights_path, progress=progress)
    return FeatureModel(module.to(target).eval(), spec, target, has_classifier=spec.classifier)


def _module_device(module: nn.Module) -> torch.device:
    """Where the module's parameters (or buffers) live; cpu for a module without any."""
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def wrap_module(module: nn.Module, *, name: str = "custom.module", input_hw: tuple[int, int] = (224, 224),
                layers: Sequence[str] | None = None, scaling: str = "imagenet",
                mean: tuple[float, float, float] = zoo.IMAGENET_MEAN,
                std: tuple[float, float, float] = zoo.IMAGENET_STD) -> FeatureModel:
    """Wrap any ``nn.Module``: layers are module paths (see :func:`~featurelens.list_layers`).

    The module is used where it is and as it is: it is never moved to another device, and its
    training mode is switched to eval only during a forward pass and restored afterwards.
    Channels and stride of each layer are measured with one dummy forward pass. ViT-style
    token outputs ``(N, L, C)`` become ``(N, H, W, C)`` grids with the model's
    ``num_prefix_tokens`` (class/register tokens) dropped.
    """
    paths = list(layers) if layers is not None else [p for p, _ in module.named_children()]
    if not paths:
        raise ValueError("no layers to wrap: pass module paths, see featurelens.list_layers(module)")
    prefix = int(getattr(module, "num_prefix_tokens", 0))
    device = _module_device(module)
    probe_spec = ModelSpec(name=name, arch=name.split(".")[0], description="wrapped module", input_hw=input_hw,
                           scaling=scaling, layers=tuple(LayerSpec(p, p, 1, 1) for p in paths),
                           default_layers=(), weights_source="in memory", weights_sha256="", license="unknown",
                           offline=True, builder=lambda **_: module, mean=mean, std=std)
    probe = FeatureModel(module, probe_spec, device, num_prefix_tokens=prefix, has_classifier=False)
    feats, _ = probe.run(torch.zeros(1, 3, *input_hw), paths)
    measured = tuple(LayerSpec(p, p, f.shape[3], max(1, round(input_hw[0] / f.shape[1]))) for p, f in feats.items())
    measured = tuple(sorted(measured, key=lambda spec: spec.stride))
    spec = ModelSpec(**{**probe_spec.__dict__, "layers": measured,
                        "default_layers": tuple(s.name for s in measured)})
    return FeatureModel(module, spec, device, num_prefix_tokens=prefix, has_classifier=False)
