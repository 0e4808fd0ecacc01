"""Models and layers: the registry (one record per set of weights), the registered models,
weight files, layer taps, tensor layouts, device choice and the one model API.

>>> from featurelens.models import get_spec
>>> get_spec("efficientnet_lite0").layer("stage4").label((224, 224))
'stage 4 · 14×14×80'
"""

from .devices import resolve_device
from .layouts import FEATURES_NHWC, IMAGES_NHWC, PER_IMAGE_N, Layout, nchw_to_nhwc, nhwc_to_nchw, tokens_nlc_to_nhwc
from .extraction import ForwardStopped, LayerInfo, LayerNotFoundError, capture, list_layers
from .feature_model import FeatureModel, Prediction, imagenet_categories, load_model, weights_available, wrap_module
from .registry import (LayerSpec, ModelSpec, UnknownLayerError, UnknownModelError, get_spec, list_models, parse_layer_names,
                       register_model, registered, resolve_model_name)
from .report import ImageReport, analyse_image, label_note, layer_rows
from .weights import (MIRROR_ENV, WeightsCorruptError, WeightsUnavailableError, fetch_weights, file_sha256,
                      known_download_bytes, weights_cache_dir)
from .zoo import IMAGENET_MEAN, IMAGENET_STD, lite_package_weights, offline_hint, torchvision_builder, weights_url

__all__ = [
    "FEATURES_NHWC", "IMAGES_NHWC", "PER_IMAGE_N", "Layout", "nchw_to_nhwc", "nhwc_to_nchw", "tokens_nlc_to_nhwc",
    "FeatureModel", "ForwardStopped", "IMAGENET_MEAN", "IMAGENET_STD", "ImageReport", "LayerInfo", "LayerNotFoundError", "LayerSpec",
    "ModelSpec", "Prediction", "UnknownLayerError", "UnknownModelError", "WeightsCorruptError",
    "WeightsUnavailableError", "analyse_image", "capture", "fetch_weights", "file_sha256", "get_spec",
    "MIRROR_ENV", "imagenet_categories", "known_download_bytes", "label_note", "layer_rows", "list_layers", "list_models", "lite_package_weights", "load_model",
    "offline_hint", "parse_layer_names", "register_model", "registered", "resolve_device", "resolve_model_name", "weights_available",
    "torchvision_builder", "weights_cache_dir", "weights_url", "wrap_module",
]
