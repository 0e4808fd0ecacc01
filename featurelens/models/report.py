"""What a model makes of one image: predictions and every layer's features, one forward pass.

This is the computation behind the "Model & layers" page; a notebook calls it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from ..images import display_image
from .feature_model import FeatureModel, Prediction

__all__ = ["ImageReport", "LabelNote", "LOW_TOP1_PROBABILITY", "COLOURLESS_SPREAD", "analyse_image", "colour_spread",
           "label_note", "layer_rows"]

LOW_TOP1_PROBABILITY = 0.40
"""Below this top-1 probability the labels get a note: the model is unsure. Chosen from real
top-1 probabilities of the offline models: with ``efficientnet_lite0.in1k``, on 1000 ImageNet
photos (one per class) a top-1 under 0.40 was the right class in 45 % of 154 cases (over 0.70:
97 % of 611); 95–96 % of 468 NIH chest X-rays are under 0.40 with Lite0, Lite1 and Lite2 (median
0.08–0.11); a fundus photo (the gallery's ``retina``, "lampshade") gets 0.21, 0.20 and 0.37; the
bundled cat (chelsea) gets 0.75–0.78 and the espresso (coffee) 0.70–0.90."""

COLOURLESS_SPREAD = 0.02
"""An image whose mean colour spread (:func:`colour_spread`) is below this has no colour: an
X-ray, a CT or MRI slice, a black-and-white photo. ImageNet's photos are mostly colour photos of
everyday objects, so such an image gets the note however confident the model is (one X-ray
reaches 0.92 for "fountain" with Lite0). Grayscale files have spread 0; of the 1000 ImageNet
photos 3.8 % are under 0.02 (2.6 % under 0.01); the cat has 0.24, the espresso 0.42, the fundus
photo 0.45."""


@dataclass(frozen=True)
class LabelNote:
    """What the ImageNet labels of one image mean and do not mean: ``reasons`` (``"no colour"``,
    ``"unsure"``) and ``text``, plain words for a reader who is no ML expert (a clinician)."""

    reasons: tuple[str, ...]
    text: str


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


def colour_spread(image_hwc_u8: np.ndarray) -> float:
    """Mean over pixels of (largest − smallest of R, G, B), in [0, 1]: 0 for a gray image.
    ``image_hwc_u8``: uint8 RGB ``(H, W, 3)`` or gray ``(H, W)``.

    >>> colour_spread(np.full((4, 4, 3), 200, np.uint8)), colour_spread(np.zeros((2, 2), np.uint8))
    (0.0, 0.0)
    """
    if image_hwc_u8.ndim == 2 or image_hwc_u8.shape[-1] == 1:
        return 0.0
    rgb = image_hwc_u8[..., :3]
    return float((rgb.max(axis=-1).astype(np.float32) - rgb.min(axis=-1)).mean() / 255.0)


def label_note(predictions: Sequence[Prediction], image_hwc_u8: np.ndarray | None = None) -> LabelNote | None:
    """A note for ImageNet labels that must not be read as what the image shows, or None.

    The note is due when the top-1 probability is under :data:`LOW_TOP1_PROBABILITY` (the model
    is unsure) or the image has no colour (:data:`COLOURLESS_SPREAD`: X-rays, scans), since
    ImageNet's 1000 classes are everyday objects in colour photos and none of them is medical.
    ``image_hwc_u8`` is the image as the model saw it (``ImageReport.input_hwc_u8``).

    >>> label_note([Prediction(285, "Egyptian cat", 0.77)]) is None
    True
    >>> label_note([Prediction(619, "lampshade", 0.21)]).reasons
    ('unsure',)
    """
    if not predictions:
        return None
    top = predictions[0]
    reasons = []
    if image_hwc_u8 is not None and colour_spread(image_hwc_u8) < COLOURLESS_SPREAD:
        reasons.append("no colour")
    if top.probability < LOW_TOP1_PROBABILITY:
        reasons.append("unsure")
    if not reasons:
        return None
    opening = {"no colour": "This image has no colour, like an X-ray or a scan, and the model learnt from colour "
                            "photos.",
               "unsure": f"The model is unsure: its best label, “{top.label}”, gets only {top.probability:.0%}."}
    return LabelNote(tuple(reasons), " ".join(opening[r] for r in reasons) + (
        " ImageNet, where these labels come from, has 1000 everyday object classes (animals, tools, food, "
        "vehicles) and none for medical images — no X-ray, scan, tissue or disease classes. The labels name "
        "the closest of those everyday objects: not necessarily what the image shows, and never a diagnosis."))
