"""Invariance: how features change when the image is rotated, zoomed or flipped (ISO).

:mod:`.transforms` applies a transform and maps points between the original and the
transformed image; :mod:`.sweep` measures the similarity of a reference to its corresponding
cell across a sweep; :mod:`.chart` draws it (altair); :mod:`.claims` checks the lesson.

>>> from featurelens.invariance import parse_transforms, map_point
>>> [map_point(t, (0.75, 0.5)) for t in parse_transforms("rotate", "0, 180")]
[(0.75, 0.5), (0.25, 0.5)]
"""

from .transforms import (XY, TransformKind, TRANSFORM_KINDS, Transform, TransformError, DEFAULT_SWEEPS, MAX_TRANSFORMS,
                         MAX_ZOOM, parse_transforms, sweep, apply_transform, valid_mask, affine, map_point, unmap_point)
from .sweep import (TransformedImage, SweepFeatures, transform_images, sweep_features, invariance_table,
                    sweep_means, transformed_views, TABLE_COLUMNS)
from .chart import invariance_chart, LAYER_COLORS
from .claims import SweepEvidence, SweepMeanGreater, SweepValue, SweepGaps, SWEEP_CLAIMS

__all__ = ["XY", "TransformKind", "TRANSFORM_KINDS", "Transform", "TransformError", "DEFAULT_SWEEPS", "MAX_TRANSFORMS",
           "MAX_ZOOM", "parse_transforms", "sweep", "apply_transform", "valid_mask", "affine", "map_point", "unmap_point",
           "TransformedImage", "SweepFeatures", "transform_images", "sweep_features", "invariance_table",
           "sweep_means", "transformed_views", "TABLE_COLUMNS", "invariance_chart", "LAYER_COLORS", "SweepEvidence",
           "SweepMeanGreater", "SweepValue", "SweepGaps", "SWEEP_CLAIMS"]
