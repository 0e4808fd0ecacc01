"""FeatureLens core: models and layers, images, feature caches, similarity and overlays.

Pure Python/torch/numpy; never imports Streamlit, so notebooks, the CLI and the app share it.
One subpackage per capability:

- :mod:`featurelens.models` — registry, weights, layer taps, :func:`load_model`, :func:`wrap_module`;
- :mod:`featurelens.images` — loading anything as RGB, bundled gallery, folders, uploads;
- :mod:`featurelens.caches` — Zarr feature caches: build, resume, open, list;
- :mod:`featurelens.similarity` — metrics, references, overlays, views, view state, parts;
- :mod:`featurelens.invariance` — rotation, zoom and flip sweeps, corresponding cells, the chart;
- :mod:`featurelens.segmentation` — training-free few-shot segmentation, IoU, mask folders;
- :mod:`featurelens.config` — folders and environment variables;
- :mod:`featurelens.scenarios` — scenario and recipe files; :mod:`featurelens.cli` — the command line.

Start with :func:`load_model` and :func:`list_models`.
"""

from .models import (FeatureModel, LayerInfo, LayerSpec, ModelSpec, Prediction, get_spec, imagenet_categories,
                     list_layers, list_models, load_model, resolve_model_name, weights_available, wrap_module)

__all__ = [
    "FeatureModel", "LayerInfo", "LayerSpec", "ModelSpec", "Prediction", "get_spec", "imagenet_categories",
    "list_layers", "list_models", "load_model", "resolve_model_name", "weights_available", "wrap_module",
]

__version__ = "0.2.0"
