"""Chest X-ray models: torchxrayvision's DenseNet-121 (Cohen et al., MIDL 2022), the model of the
VFS paper's chest X-ray study, registered like every other model.

``densenet121.xrv_nih`` was trained on NIH ChestX-ray14, ``densenet121.xrv_all`` on seven chest
X-ray datasets. Their weights download once, when online, from torchxrayvision's release (or
``$FEATURELENS_WEIGHTS_MIRROR``) into the weights folder; without a network, loading raises
:class:`~featurelens.models.WeightsUnavailableError` saying why and naming the offline models.

**Preprocessing** is torchxrayvision's: one grey channel scaled from [0, 255] to [-1024, 1024]
(``xrv.datasets.normalize(img, 255)``), 224×224. FeatureLens feeds every model an RGB image
squashed to its input size; the record's ``"xrv"`` scaling maps [0, 1] to [-1024, 1024]
(``mean`` 0.5, ``std`` 0.5/1024) and the network's first module averages the three channels
(``x.mean(1)``, what torchxrayvision does with an RGB file), so a grey X-ray reaches the
DenseNet exactly as torchxrayvision's own pipeline would hand it over.

**Checksums.** torchxrayvision publishes no checksum for its weight files. The sha256 of the
file is pinned next to it on its first download (``<file>.sha256``) and every later load
compares the file against it, so a file that changed or was truncated afterwards is refused.
:data:`PUBLISHED_SHA256` holds a published value per file when one is known (none is, today);
a download that does not match it is refused outright.

**Loading.** The release files are whole pickled ``DenseNet`` modules. They are read with
``torch.load(weights_only=True)`` and an allow-list of the DenseNet's own module classes, so a
file can only rebuild those modules and tensors, never run other code; then their tensors are
loaded strictly into a fresh ``xrv.models.DenseNet``. A plain state dict is accepted too.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .registry import LayerSpec, ModelSpec, register_model
from .weights import WeightsCorruptError, fetch_weights, file_sha256
from .zoo import _DENSENET121, offline_hint, weights_url

__all__ = ["XRV_WEIGHTS", "PUBLISHED_SHA256", "XRV_MEAN", "XRV_STD", "xrv_builder", "xrv_module"]

_RELEASE = "https://github.com/mlmed/torchxrayvision/releases/download/v1"
XRV_WEIGHTS = {  # tag: (torchxrayvision weights name, release file, what it was trained on)
    "xrv_nih": ("densenet121-res224-nih", f"{_RELEASE}/nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
                "NIH ChestX-ray14 (the VFS paper's model)"),
    "xrv_all": ("densenet121-res224-all",
                f"{_RELEASE}/nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-"
                "seed0-best.pt", "NIH, PadChest, CheXpert, MIMIC-CXR, Google, OpenI and RSNA/Kaggle chest X-rays"),
}
"""The registered torchxrayvision weights, by registry tag."""

PUBLISHED_SHA256: dict[str, str] = {}
"""Published sha256 per release file name (none is published today; see the module docstring)."""

XRV_MEAN = (0.5, 0.5, 0.5)
XRV_STD = (0.5 / 1024, 0.5 / 1024, 0.5 / 1024)
"""``(x − 0.5) / (0.5/1024) = 2048·x − 1024``: [0, 1] → torchxrayvision's [-1024, 1024]."""


class _ChannelMean(nn.Module):
    """``(N, 3, H, W)`` → ``(N, 1, H, W)``: the mean of the channels (a grey image's one value)."""

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return x_nchw.mean(dim=1, keepdim=True)


def xrv_module(state_dict: dict[str, torch.Tensor] | None = None, weights: str = "densenet121-res224-nih") -> nn.Module:
    """torchxrayvision's DenseNet-121 taking FeatureLens's 3-channel input (channels averaged first,
    a parameter-free module ``features.grey``), with ``state_dict`` loaded strictly (random weights
    when None). Module paths are torchvision's (``features.denseblock4``).

    Raises:
        ImportError: torchxrayvision is not installed (``pip install torchxrayvision``).
        WeightsCorruptError: the tensors do not fit the architecture.
    """
    try:
        import torchxrayvision as xrv
    except ImportError as exc:
        raise ImportError("the chest X-ray models need the torchxrayvision package: pip install torchxrayvision "
                          "(it is in requirements.txt)") from exc
    model = xrv.models.DenseNet(weights=None)
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise WeightsCorruptError(f"the weights do not fit torchxrayvision's DenseNet-121: {exc}") from exc
    model.features = nn.Sequential(collections.OrderedDict([("grey", _ChannelMean()),
                                                            *model.features.named_children()]))
    model.targets = model.pathologies = list(xrv.models.model_urls[weights]["labels"])
    model.op_threshs = torch.tensor(xrv.models.model_urls[weights]["op_threshs"])
    return model.eval()


def _allowed_globals() -> list:
    """The classes a release file may rebuild: the DenseNet's own modules (and ``set``)."""
    import torchxrayvision as xrv

    classes = {type(m) for m in xrv.models.DenseNet(weights=None).modules()}
    return [*classes, set]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a release file (a pickled DenseNet) or of a plain state dict."""
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsCorruptError(f"cannot read the weights file {path.name}: {str(exc).splitlines()[0]}. Remove it "
                                  "and load the model again to download it afresh.") from exc
    if isinstance(loaded, nn.Module):
        return loaded.state_dict()
    if isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded
    raise WeightsCorruptError(f"{path.name} holds a {type(loaded).__name__}, not a DenseNet or its state dict")


def _check_pin(path: Path) -> None:
    """Compare the file with its published or pinned sha256; pin it on first use."""
    digest = file_sha256(path)
    published = PUBLISHED_SHA256.get(path.name)
    pin = path.with_name(path.name + ".sha256")
    expected = published or (pin.read_text().strip() if pin.is_file() else None)
    if expected and digest != expected:
        path.unlink(missing_ok=True)
        pin.unlink(missing_ok=True)
        raise WeightsCorruptError(f"{path.name} does not match its recorded sha256 ({expected[:12]}…, the file has "
                                  f"{digest[:12]}…), so it was removed: load the model again to download it afresh.")
    if not pin.is_file():
        pin.write_text(digest + "\n")


def xrv_builder(tag: str) -> Callable[..., nn.Module]:
    """A registry builder for ``densenet121.<tag>``: download once (or ``weights_path``), check, load."""
    weights, url, _ = XRV_WEIGHTS[tag]

    def build(weights_path: str | Path | None = None, progress=None) -> nn.Module:
        if weights_path:
            path = Path(weights_path)
        else:
            path = fetch_weights(weights_url(url), offline_hint=offline_hint(), progress=progress,
                                 sha256=PUBLISHED_SHA256.get(url.rsplit("/", 1)[-1]),
                                 what=f"the weights of the chest X-ray model densenet121.{tag}")
            _check_pin(path)
        return xrv_module(_read_state_dict(path), weights)
    return build


def _xrv_layers() -> tuple[LayerSpec, ...]:
    return tuple(LayerSpec(n, m, c, s, n) for n, m, c, s in _DENSENET121)


def _register_xrv(tag: str) -> None:
    weights, url, trained_on = XRV_WEIGHTS[tag]

    @register_model
    def spec() -> ModelSpec:
        return ModelSpec(
            name=f"densenet121.{tag}", arch="densenet121",
            description=f"DenseNet-121 from torchxrayvision ({weights}), trained on {trained_on} to recognise "
                        "chest X-ray findings; input one grey channel in [-1024, 1024], 224×224.",
            input_hw=(224, 224), scaling="xrv", layers=_xrv_layers(),
            default_layers=("denseblock3", "denseblock4"), weights_source=url,
            weights_sha256=PUBLISHED_SHA256.get(url.rsplit("/", 1)[-1], ""), license="Apache-2.0",
            offline=False, builder=xrv_builder(tag), mean=XRV_MEAN, std=XRV_STD, classifier=False,
            paper="Cohen et al., TorchXRayVision (MIDL 2022); the VFS paper's chest X-ray model")


for _tag in XRV_WEIGHTS:
    _register_xrv(_tag)
