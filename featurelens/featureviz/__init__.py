"""Feature visualisation for a set of images (Stergiou, *The Mind's Eye*, ICIP 2021): images that
show what a layer responds to in those images, built from composable parts (Lucent's design).

- :mod:`.facets`: pooled activations → PCA → t-SNE → k-means facets, each a softmax-of-inverse-
  distance weighted target activation and starting image (Eq. 1);
- :mod:`.robust`: Barron's general robust loss;
- :mod:`.objectives`: named objectives that add up; the paper's loss (Eq. 2–4);
- :mod:`.params`: parameterisations, ``(tensors, render)``;
- :mod:`.transforms`: image → image transforms (jitter) and the paper's regularisers (blur, TV
  denoising, centre-biased gradient mask), scheduled linearly (Eq. 5);
- :mod:`.render`: the render loop (seed, steps, snapshots, progress, cancel);
- :mod:`.visualize`: facets end to end, the cross-layer row, figures; :mod:`.chart`: top channels.

>>> from featurelens.featureviz import Schedule, barron_loss, inverse_distance_weights
>>> round(float(inverse_distance_weights(np.array([2.0, 2.0])).sum()), 6)
1.0
"""

import numpy as np  # noqa: F401  (the doctest above)

from .chart import SERIES, channel_chart, channel_table
from .facets import GAMMA, NEAREST, Facet, FacetError, blend_images, embed_2d, inverse_distance_weights, select_facets
from .objectives import (L1_WEIGHT, Activations, Objective, Schedule, activation_l1, channel_dot, facet_loss,
                         mean_activation, objective, pooled_channels, robust_distance)
from .params import ImageParam, noise_image, pixel_image, to_image_hwc_u8
from .render import LEARNING_RATE, TIMING_PARTS, RenderResult, RenderStep, render_vis
from .robust import barron_loss
from .transforms import (GradientMask, ImageFilter, Regulariser, Transform, centre_mask, centre_weights_hw, compose,
                         gaussian_blur, jitter, standard_regularisers, standard_transforms, tv_denoise)
from .visualize import (FacetResult, FacetSettings, FacetVisualization, LiveRun, facet_figure, layers_figure,
                        png_bytes, pooled_activations, previous_layer, visualize_facets, visualize_layers)

__all__ = ["SERIES", "channel_chart", "channel_table", "GAMMA", "NEAREST", "Facet", "FacetError", "blend_images", "embed_2d", "inverse_distance_weights",
           "select_facets", "L1_WEIGHT", "Activations", "Objective", "Schedule", "activation_l1", "channel_dot",
           "facet_loss", "mean_activation", "objective", "pooled_channels", "robust_distance", "ImageParam",
           "noise_image", "pixel_image", "to_image_hwc_u8", "LEARNING_RATE", "TIMING_PARTS", "RenderResult",
           "RenderStep", "render_vis", "barron_loss", "GradientMask", "ImageFilter", "Regulariser", "Transform",
           "centre_mask", "centre_weights_hw", "compose", "gaussian_blur", "jitter", "standard_regularisers",
           "standard_transforms", "tv_denoise", "FacetResult", "FacetSettings", "FacetVisualization", "LiveRun",
           "facet_figure", "layers_figure", "png_bytes", "pooled_activations", "previous_layer", "visualize_facets",
           "visualize_layers"]
