"""The Mind's Eye end to end: facets of a set of images at one layer, one optimised image per
facet, and the cross-layer row (the same images at several layers, the paper's Fig. 4).

:func:`visualize_facets` runs the model on the images at its input size, pools each layer's
activations, selects the facets (:func:`~featurelens.featureviz.select_facets`), and renders
each facet from its blended starting image with the paper's loss (:func:`facet_loss`) and
regularisers. :class:`LiveRun` carries progress, the latest image and a cancel flag between a
worker thread and whoever watches it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..models import FeatureModel
from ..similarity import views_figure
from .facets import NEAREST, Facet, blend_images, embed_2d, select_facets
from .objectives import L1_WEIGHT, Schedule, facet_loss
from .params import pixel_image
from .render import LEARNING_RATE, RenderResult, RenderStep, render_vis
from .transforms import Regulariser, standard_regularisers

__all__ = ["FacetSettings", "FacetResult", "FacetVisualization", "LiveRun", "visualize_facets", "visualize_layers",
           "previous_layer", "pooled_activations", "facet_figure", "layers_figure", "png_bytes"]


@dataclass(frozen=True)
class FacetSettings:
    """What to visualise: ``layer``, ``n_facets`` (the paper's C), ``top_k`` channels per target,
    ``steps``, ``nearest`` images per facet (N), ``seed``, Barron's ``shape``/``scale``, the L1
    weight λ and the learning rate (both scheduled)."""

    layer: str
    n_facets: int = 3
    top_k: int = 30
    steps: int = 200
    nearest: int = NEAREST
    seed: int = 0
    shape: float = 2.0
    scale: float = 0.5
    l1_weight: Schedule = L1_WEIGHT
    lr: Schedule = LEARNING_RATE

    def __post_init__(self) -> None:
        if self.n_facets < 1 or self.top_k < 1 or self.steps < 1 or self.nearest < 1:
            raise ValueError(f"facets, top-k, steps and nearest must be at least 1, got {self}")


@dataclass(frozen=True)
class FacetResult:
    """One facet's visualisation: the :class:`Facet`, its ``channels`` ``(k,)`` (strongest target
    channels first), the ``start_hwc_u8`` and optimised ``image_hwc_u8`` at the model's input
    size, the pooled activations of those channels ``(k,)`` in the ``target_k``, the start
    (``start_k``) and the result (``final_k``), and the :class:`RenderResult`."""

    facet: Facet
    channels: np.ndarray
    start_hwc_u8: np.ndarray
    image_hwc_u8: np.ndarray
    target_k: np.ndarray
    start_k: np.ndarray
    final_k: np.ndarray
    render: RenderResult


@dataclass(frozen=True)
class FacetVisualization:
    """All facets of one layer: ``settings``, ``inputs_hwc_u8`` (the images at the model's input
    size), their 2-D ``embeddings_n2`` and one :class:`FacetResult` per facet rendered (fewer
    when the run was cancelled)."""

    settings: FacetSettings
    inputs_hwc_u8: tuple[np.ndarray, ...]
    embeddings_n2: np.ndarray
    facets: tuple[FacetResult, ...]

    @property
    def cancelled(self) -> bool:
        return len(self.facets) < self.settings.n_facets or any(f.render.cancelled for f in self.facets)


@dataclass
class LiveRun:
    """Shared between a worker and a page: ``done``/``total`` steps, the ``label`` of the facet
    being rendered and its latest ``image_hwc_u8``; :meth:`cancel` asks the worker to stop
    after its current step."""

    done: int = 0
    total: int = 0
    label: str = ""
    image_hwc_u8: np.ndarray | None = None
    loss: float = float("nan")
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._stop.set()

    def cancelled(self) -> bool:
        return self._stop.is_set()


def previous_layer(model: FeatureModel, layer: str) -> str | None:
    """The model's layer before ``layer`` (the L1 term's layer), None for the first."""
    names = [spec.name for spec in model.layers]
    index = names.index(model.layer(layer).name)
    return names[index - 1] if index > 0 else None


def pooled_activations(model: FeatureModel, inputs_hwc_u8: Sequence[np.ndarray], layers: Sequence[str]) -> dict[str, np.ndarray]:
    """``{layer: (N, C)}`` float32: each image's spatially averaged activations."""
    feats = model.features(list(inputs_hwc_u8), list(layers))
    return {layer: f.mean(axis=(1, 2)) for layer, f in feats.items()}


def _render_facet(model: FeatureModel, settings: FacetSettings, facet: Facet, inputs: Sequence[np.ndarray],
                  regularisers: Sequence[Regulariser], on_step: Callable[[RenderStep], None] | None,
                  cancel: Callable[[], bool] | None) -> FacetResult:
    channels = facet.top_channels(settings.top_k)
    loss = facet_loss(settings.layer, facet.target_c, channels, previous_layer(model, settings.layer),
                      shape=settings.shape, scale=settings.scale, l1_weight=settings.l1_weight)
    start = blend_images([inputs[m] for m in facet.members], facet.weights)
    result = render_vis(model, loss, pixel_image(start, model.device), regularisers=regularisers,
                        steps=settings.steps, seed=settings.seed, lr=settings.lr, progress=on_step, cancel=cancel)
    start_u8 = np.rint(start * 255.0).astype(np.uint8)
    pooled = pooled_activations(model, [start_u8, result.image_hwc_u8], [settings.layer])[settings.layer]
    return FacetResult(facet, channels, start_u8, result.image_hwc_u8, facet.target_c[channels],
                       pooled[0, channels], pooled[1, channels], result)


def visualize_facets(model: FeatureModel, images: Sequence, settings: FacetSettings, *,
                     regularisers: Sequence[Regulariser] | None = None, live: LiveRun | None = None,
                     progress: Callable[[int, int], None] | None = None, _offset: int = 0,
                     _total: int | None = None) -> FacetVisualization:
    """Facets of ``images`` (PIL or ``image_hwc_u8``, any size: each is resized to the model's
    input) at ``settings.layer``, each rendered for ``settings.steps`` steps. ``live`` receives
    progress and the latest image and can cancel; ``progress(done, total)`` counts steps over all
    facets. Deterministic for a seed on the CPU."""
    if len(images) < settings.n_facets:
        raise ValueError(f"{settings.n_facets} facets need at least {settings.n_facets} images, got {len(images)}: "
                         "pick more images or fewer facets")
    inputs = tuple(model.resize(image) for image in images)
    pooled = pooled_activations(model, inputs, [settings.layer])[settings.layer]
    embeddings = embed_2d(pooled, settings.seed)
    facets = select_facets(pooled, settings.n_facets, settings.nearest, settings.seed, embeddings_n2=embeddings)
    total = _total if _total is not None else settings.n_facets * settings.steps
    regs = standard_regularisers() if regularisers is None else list(regularisers)
    results: list[FacetResult] = []
    for index, facet in enumerate(facets):
        if live is not None and live.cancelled():
            break
        base = _offset + index * settings.steps

        def on_step(step: RenderStep, base: int = base, index: int = index) -> None:
            if live is not None:
                live.done, live.total, live.loss = base + step.step, total, step.loss
                live.label, live.image_hwc_u8 = f"{settings.layer} · facet {index + 1}", step.image_hwc_u8
            if progress is not None:
                progress(base + step.step, total)

        results.append(_render_facet(model, settings, facet, inputs, regs, on_step,
                                     live.cancelled if live is not None else None))
    return FacetVisualization(settings, inputs, embeddings, tuple(results))


def visualize_layers(model: FeatureModel, images: Sequence, layers: Sequence[str], settings: FacetSettings, *,
                     regularisers: Sequence[Regulariser] | None = None, live: LiveRun | None = None,
                     progress: Callable[[int, int], None] | None = None) -> tuple[FacetVisualization, ...]:
    """The cross-layer row (Fig. 4): the same images, one facet at each of ``layers``, with the
    other ``settings``; stops early (fewer entries) when ``live`` is cancelled."""
    one = replace(settings, n_facets=1)
    total = len(layers) * one.steps
    rows = []
    for i, layer in enumerate(layers):
        if live is not None and live.cancelled():
            break
        rows.append(visualize_facets(model, images, replace(one, layer=layer), regularisers=regularisers, live=live,
                                     progress=progress, _offset=i * one.steps, _total=total))
    return tuple(rows)


def _thumb(image_hwc_u8: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image_hwc_u8).resize((side, side), Image.BICUBIC))


def facet_figure(vis: FacetVisualization, caption: str, nearest_shown: int = 3, side: int = 160) -> np.ndarray:
    """One row per facet — the result, its starting blend and its ``nearest_shown`` nearest real
    images with their weights — and ``caption`` → ``H×W×3`` uint8 (for a PNG download)."""
    views, labels = [], []
    for i, res in enumerate(vis.facets):
        shown = list(res.facet.members[:nearest_shown])
        row = [_thumb(res.image_hwc_u8, side), _thumb(res.start_hwc_u8, side),
               *(_thumb(vis.inputs_hwc_u8[m], side) for m in shown)]
        row += [np.full((side, side, 3), 255, np.uint8)] * (2 + nearest_shown - len(row))
        views += row
        labels += [f"facet {i + 1}: result", "start (blend)",
                   *(f"w = {w:.2f}" for w in res.facet.weights[:nearest_shown]), *[""] * (nearest_shown - len(shown))]
    return views_figure(views, labels, caption, per_row=2 + nearest_shown)


def layers_figure(rows: Sequence[FacetVisualization], caption: str, side: int = 160) -> np.ndarray:
    """The cross-layer row: each layer's result side by side, labelled with its layer."""
    return views_figure([_thumb(r.facets[0].image_hwc_u8, side) for r in rows if r.facets],
                        [r.settings.layer for r in rows if r.facets], caption, per_row=max(1, len(rows)))


def png_bytes(image_hwc_u8: np.ndarray) -> bytes:
    """An ``H×W×3`` uint8 image encoded as PNG."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_hwc_u8)).save(buffer, format="PNG")
    return buffer.getvalue()
