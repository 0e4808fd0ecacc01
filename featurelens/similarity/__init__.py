"""Similarity: metrics, locations and references on feature grids, overlay rendering, views of
one reference across layers or images, shareable view state, NMF parts and channel activations.

>>> import numpy as np
>>> from featurelens.similarity import similarity_map
>>> similarity_map(np.ones((1, 2, 2, 3)), np.ones(3)).shape
(1, 2, 2)
"""

from .metrics import (Metric, METRICS, DEFAULT_METRIC, get_metric, list_metrics, similarity_map,
                      cosine_similarity, angular_similarity, angular_variant, neg_euclidean_similarity,
                      dot_similarity, describe_metric_choice)
from .locations import (pixel_to_cell, cell_center_px, reference_vector, mask_to_grid, draw_region, region_reference,
                        channel_map)
from .overlays import (ColorScale, COLOR_SCALES, get_color_scale, scale_range, shared_range, normalize_map,
                       Colormap, COLORMAPS, colormap_lut, colormap_stops, colorbar_image, UPSAMPLE_MODES,
                       upsample_map, base_image, blend, draw_ring, MARKER_COLORS, PIN_RING_SCALE, render_overlay,
                       render_channel)
from .views import (OverlaySettings, OverlayView, VectorComparison, layer_views, image_views, pair_views,
                    grid_view, compare_vectors, chart_channels, reference_cell, ref_to_px, GRID_COLOR, CELL_COLOR)
from .quantize import Bits, quantize_vectors, dequantize_vectors
from .hover import HoverMode, HoverAssets, hover_assets, hover_state, pack_hover, unpack_hover
from .figure import views_figure
from .viewstate import (Bounds, ViewState, checked_int, to_query, from_query, APP_KEYS, model_from_query,
                        viewless_link_notes)
from .parts import (NegativeHandling, NEGATIVE_HANDLING, PartsResult, nmf_parts, part_colors, render_parts)
from .activations import channel_strength, strongest_channels
from .claims import (Box, Polygon, Region, ImageRegion, region_cells, ClaimCheck, LessonClaim, ImageEvidence,
                     MapClaim, RegionInTop, BestMatchIn, MeanGreater, MapStat, LayerBrighter, SharedPart, TopLabels,
                     LayerShapes, IMAGE_CLAIMS, claim_map)

__all__ = ['CELL_COLOR', 'COLORMAPS', 'COLOR_SCALES', 'ColorScale', 'Colormap', 'DEFAULT_METRIC',
    'GRID_COLOR', 'MARKER_COLORS', 'METRICS', 'Metric', 'NEGATIVE_HANDLING',
    'NegativeHandling', 'OverlaySettings', 'OverlayView', 'PIN_RING_SCALE', 'PartsResult', 'UPSAMPLE_MODES',
    'Bounds', 'VectorComparison', 'ViewState', 'checked_int', 'angular_similarity', 'angular_variant', 'base_image', 'blend', 'draw_ring',
    'cell_center_px', 'channel_map', 'channel_strength', 'colorbar_image', 'colormap_lut',
    'colormap_stops', 'compare_vectors', 'chart_channels', 'cosine_similarity', 'describe_metric_choice', 'dot_similarity',
    'from_query', 'get_color_scale', 'get_metric', 'grid_view', 'image_views', 'layer_views', 'list_metrics',
    'mask_to_grid', 'draw_region', 'neg_euclidean_similarity', 'nmf_parts', 'normalize_map', 'pair_views', 'part_colors',
    'pixel_to_cell', 'ref_to_px', 'reference_cell', 'reference_vector', 'region_reference', 'render_channel',
    'render_overlay', 'render_parts', 'scale_range', 'shared_range', 'similarity_map', 'strongest_channels',
    'to_query', 'upsample_map', 'APP_KEYS', 'model_from_query', 'viewless_link_notes',
    'Box', 'Polygon', 'Region', 'ImageRegion', 'region_cells', 'ClaimCheck', 'LessonClaim', 'ImageEvidence',
    'MapClaim', 'RegionInTop', 'BestMatchIn', 'MeanGreater', 'MapStat', 'LayerBrighter', 'SharedPart', 'TopLabels', 'LayerShapes',
    'IMAGE_CLAIMS', 'claim_map', 'Bits', 'quantize_vectors', 'dequantize_vectors', 'HoverMode', 'HoverAssets',
    'hover_assets', 'hover_state', 'pack_hover', 'unpack_hover', 'views_figure']
