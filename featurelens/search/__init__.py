"""Region search over feature caches: Visual Feature Search (Ulrich & Fong, CVPRW 2023).

The user draws a region on a query image; it becomes a soft mask ``m`` on a layer's grid.
With ``q = f_query[box] ⊙ m`` (``box`` the bounding box of ``m > 0``), every image is scored
by its best window ``u``: ``cos(q, f_image[u + box] ⊙ m)``.

Start with :func:`query_from_image` (or :func:`query_from_features`) and :func:`search` over a
:class:`~featurelens.caches.FeatureCache`; :class:`SearchResult` holds every image's best score
and window, the top hits (``top_k(k, unique_by=column)``) and ``scores_table()`` for box plots.

>>> import numpy as np
>>> feats_nhwc = np.zeros((3, 4, 4, 2), np.float32)
>>> feats_nhwc[:, :, :, 0] = 1
>>> feats_nhwc[2, 1, 2] = (0, 1)                       # image 2 has one odd cell
>>> mask_hw = np.zeros((4, 4)); mask_hw[1, 2] = 1
>>> query = query_from_features(feats_nhwc[2], mask_hw, model="toy", layer="l", image_index=2)
>>> result = search_features(feats_nhwc, query, include_self=True, device="cpu")
>>> [(hit.index, round(hit.score, 3), hit.window) for hit in result.top[:2]]
[(2, 1.0, (1, 2, 1, 1)), (0, 0.0, (0, 0, 1, 1))]
"""

from .claims import SEARCH_CLAIMS, SearchEvidence
from .api import best_windows, check_cache, rank_windows, search, search_features
from .display import canvas_mask, drawn_or_region_mask, draw_window, grouped_scores, mask_outline, top_overlap
from .engine import ComputeDtype, ProgressFn
from .errors import SearchCancelled, SearchError, SearchMismatchError
from .image_search import search_image
from .index import FeatureIndex, load_features
from .masks import Region, box_mask, grid_mask, is_box, load_mask, mask_box, mask_from_image, parse_box, polygon_mask, region_mask
from .quantize import dequantize_int8, quantize_int8
from .query import Query, query_from_features, query_from_image
from .results import Hit, SearchResult

__all__ = [
    "best_windows", "check_cache", "rank_windows",
    "canvas_mask", "drawn_or_region_mask", "draw_window", "grouped_scores", "mask_outline", "top_overlap",
    "FeatureIndex", "Hit", "ProgressFn", "Query", "SearchCancelled", "SearchError", "SearchMismatchError", "SearchResult",
    "box_mask", "dequantize_int8", "grid_mask", "load_features", "mask_box", "quantize_int8",
    "query_from_features", "search", "search_features",
    "SEARCH_CLAIMS", "SearchEvidence", "ComputeDtype", "load_mask", "mask_from_image", "parse_box",
    "Region", "is_box", "polygon_mask", "region_mask", "query_from_image", "search_image",
]
