"""What a model makes of one image: predictions and every layer's features, one forward pass.

This is the computation behind the "Model & layers" page; a notebook calls it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..images import display_image
from .feature_model import FeatureModel, Prediction

__all__ = ["ImageReport", "analyse_image", "layer_rows"]


@dataclass(frozen=True)
class ImageReport:
    """``input_hwc_u8``: the image as the model sees it (resized to its input);
    ``display_hwc_u8``: the image in its own aspect ratio, longest side at most
    ``featurelens.images.DISPLAY_PX`` (feature maps stretch onto it exactly, since the model saw the whole image);
    ``feats_hwc``: every layer's features ``(H, W, C)`` float32; ``predictions``: top-k.
    All arrays are read-only."""

    model_name: str
    input_hwc_u8: np.ndarray
    display_hwc_u8: np.ndarray
    feats_hwc: dict[str, np.ndarray]
    predictions: list[Prediction]


def analyse_image(model: FeatureModel, image: Image.Image | np.ndarray, topk: int = 5) -> ImageReport:
    """Top-``topk`` ImageNet labels and the features of all of ``model``'s layers in one pass."""
    batch_nchw = model.preprocess([image])
    layer_names = [layer.name for layer in model.layers]
    feats, logits = model.run(batch_nchw, layer_names, with_logits=model.has_classifier)
    predictions = model.predictions_from_logits(logits, topk)[0] if logits is not None else []
    report = ImageReport(model_name=model.name, input_hwc_u8=model.resize(image), display_hwc_u8=display_image(image),
                         feats_hwc={name: f[0].numpy() for name, f in feats.items()}, predictions=predictions)
    for array in (report.input_hwc_u8, report.display_hwc_u8, *report.feats_hwc.values()):
        array.setflags(write=False)  # a report is shared (e.g. by the app's sessions): read-only
    return report


def layer_rows(model: FeatureModel) -> list[dict]:
    """One row per layer (name, grid, channels, stride, values per image) for a table."""
    rows = []
    for layer in model.layers:
        h, w = layer.grid_hw(model.input_hw)
        rows.append({"layer": layer.name, "label": layer.label(model.input_hw), "module": layer.module,
                     "grid": f"{h}×{w}", "channels": layer.channels, "stride": layer.stride,
                     "values per image": h * w * layer.channels})
    return rows
