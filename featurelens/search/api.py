"""Region search (Visual Feature Search): :func:`search` over a feature cache, :func:`search_features`
over any ``(N, H, W, C)`` array (numpy, torch, zarr; float or int8 with scales)."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from .engine import ComputeDtype, ProgressFn, _scan
from .index import FeatureIndex, is_zarr
from .errors import SearchError, SearchMismatchError
from .query import Query
from .results import SearchResult, _indices

__all__ = ["best_windows", "check_cache", "rank_windows", "search", "search_features"]


def search(cache: Any, query: Query, *, top_k: int = 10, unique_by: str | None = None, include_self: bool = False,
           exclude: Iterable[int | str] = (), device: str | torch.device | None = None,
           block_images: int | None = None, read_ahead: int = 2, progress: ProgressFn | None = None,
           cancel: Any = None, compute_dtype: ComputeDtype = "float32") -> SearchResult:
    """Find the images of a feature cache whose best window is most similar to the query region.

    The cache's features at ``query.layer`` are streamed chunk by chunk (read ahead in a
    background thread, at most ``read_ahead`` blocks waiting), so memory stays bounded by a
    few chunks whatever the number of images. Unloaded images (``cache.loaded_n`` False) are
    left out of the ranking. Caches stored as int8 are searched with their per-cell scales. To
    search one layer many times, hold it in memory with :func:`load_features` and call
    :func:`search_features`.

    Args:
        cache: an open :class:`~featurelens.caches.FeatureCache` (or any object with ``model_name``,
            ``weights_sha256``, ``layers``, ``layer_shape(layer)``, ``features(layer)``,
            ``feature_scales(layer)``, ``image_ids``, ``metadata``, ``loaded_n``).
        query: the query (see :func:`~featurelens.search.query_from_features`).
        top_k, unique_by: the hits kept in ``result.top`` (see :meth:`SearchResult.top_k`).
        include_self: keep the query image (``query.image_id`` / ``query.image_index``) in the ranking.
        exclude: more image indices or ids to leave out of the ranking.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``; default the first available in that order.
        block_images: images per block (default: whole chunks, about 16 MB).
        read_ahead: blocks read ahead in the background.
        progress: called as ``progress(done_images, total_images)`` after each block.
        cancel: an object with ``is_set()`` (e.g. ``threading.Event``), checked between blocks.
        compute_dtype: ``"float32"`` (exact to float64's top-10 in our tests) or ``"bfloat16"``
            (for hardware with bf16 units; see :mod:`featurelens.search.engine` for measurements).

    Returns:
        a :class:`SearchResult`.

    Raises:
        SearchMismatchError: the cache was built with another model or weights, lacks the layer,
            or its grid differs; the message names both sides.
        SearchError: invalid arguments.
        SearchCancelled: ``cancel`` was set.
    """
    check_cache(cache, query)
    return search_features(
        cache.features(query.layer), query, scale_nhw=cache.feature_scales(query.layer), image_ids=cache.image_ids,
        metadata=cache.metadata, loaded_n=cache.loaded_n, top_k=top_k, unique_by=unique_by,
        include_self=include_self, exclude=exclude, device=device, block_images=block_images,
        read_ahead=read_ahead, progress=progress, cancel=cancel, compute_dtype=compute_dtype)


def check_cache(cache: Any, query: Query) -> None:
    """Refuse a cache from another model or weights, without the layer, or with another grid
    (:class:`SearchMismatchError` naming both sides)."""
    if cache.model_name != query.model_name:
        raise SearchMismatchError(
            f"the cache holds features of model {cache.model_name!r} but the query comes from model "
            f"{query.model_name!r}: compute the query with load_model({cache.model_name!r}) or open a cache "
            f"built with {query.model_name!r}")
    cache_weights = cache.weights_sha256
    if query.weights_sha256 and cache_weights and cache_weights != query.weights_sha256:
        raise SearchMismatchError(
            f"the cache holds features of {cache.model_name!r} with weights sha256 {cache_weights[:12]}… but the "
            f"query was computed with weights {query.weights_sha256[:12]}…: use the weights the cache was built "
            "with, or rebuild the cache")
    if query.layer not in cache.layers:
        raise SearchMismatchError(f"the cache has no layer {query.layer!r} (the query's layer); it holds "
                                  f"{', '.join(cache.layers)}: query one of those")
    shape = tuple(cache.layer_shape(query.layer))
    if shape != query.feats_hwc.shape:
        raise SearchMismatchError(
            f"the cache's layer {query.layer!r} has shape (H, W, C) {shape} but the query features have "
            f"{query.feats_hwc.shape}: compute the query at the cache's input size {getattr(cache, 'input_hw', '')}")


def search_features(feats_nhwc: Any, query: Query, *, scale_nhw: Any = None,
                    image_ids: Sequence[str] | None = None, metadata: pd.DataFrame | None = None,
                    loaded_n: np.ndarray | None = None, top_k: int = 10, unique_by: str | None = None,
                    include_self: bool = False, exclude: Iterable[int | str] = (),
                    device: str | torch.device | None = None, block_images: int | None = None,
                    read_ahead: int = 2, progress: ProgressFn | None = None, cancel: Any = None,
                    compute_dtype: ComputeDtype = "float32") -> SearchResult:
    """Region search over features held anywhere: the engine behind :func:`search`.

    Args:
        feats_nhwc: ``(N, H, W, C)`` features: a :class:`~featurelens.search.index.FeatureIndex`
            from :func:`load_features` (held on its device, laid out for search: the fastest for
            repeated searches; ``block_images`` and ``read_ahead`` do not apply), numpy or torch
            (any float dtype, or int8 with ``scale_nhw``), or a zarr array; arrays are read block
            by block ahead of the scoring, in a background thread (a tensor already on the
            accelerator is sliced in place).
        query: the query; its grid and channels must match ``(H, W, C)``.
        scale_nhw: ``(N, H, W)`` per-cell scales of int8 features (see :func:`quantize_int8`).
        image_ids: ``N`` ids (default ``"0"``, ``"1"``, …).
        metadata: one row per image, for hits, ``unique_by`` and :meth:`SearchResult.scores_table`.
        loaded_n: ``(N,)`` bool; False rows are left out of the ranking.
        Other arguments: as in :func:`search`.

    Raises:
        SearchMismatchError: the features' ``(H, W, C)`` differ from the query's.
        SearchError: invalid arguments (int8 without scales, wrong lengths, unknown ids).
        SearchCancelled: ``cancel`` was set.
    """
    _check_lengths(int(feats_nhwc.shape[0]), image_ids, metadata, loaded_n)  # before the scan, not after
    best_n, windows_n4, dev = best_windows(
        feats_nhwc, query, scale_nhw=scale_nhw, device=device, block_images=block_images, read_ahead=read_ahead,
        progress=progress, cancel=cancel, compute_dtype=compute_dtype)
    return rank_windows(query, best_n, windows_n4, image_ids=image_ids, metadata=metadata, loaded_n=loaded_n,
                        top_k=top_k, unique_by=unique_by, include_self=include_self, exclude=exclude, device=dev)


def best_windows(feats_nhwc: Any, query: Query, *, scale_nhw: Any = None, device: str | torch.device | None = None,
                 block_images: int | None = None, read_ahead: int = 2, progress: ProgressFn | None = None,
                 cancel: Any = None, compute_dtype: ComputeDtype = "float32") -> tuple[np.ndarray, np.ndarray, str]:
    """The scan without the ranking (what each task of a cluster search runs on its images).

    Returns:
        ``(best_scores_n (N,) float32, windows_n4 (N, 4) int32 (row, col, h, w), device)``.
    """
    n = _check_features(feats_nhwc, query, scale_nhw)
    best_n, rc_n2, dev = _scan(feats_nhwc, query, scale=scale_nhw, device=device, block_images=block_images,
                               read_ahead=read_ahead, progress=progress, cancel=cancel, compute_dtype=compute_dtype)
    _, _, bh, bw = query.box
    windows_n4 = np.concatenate([rc_n2, np.broadcast_to(np.array([bh, bw], np.int32), (n, 2))], axis=1)
    return best_n, windows_n4.astype(np.int32), dev


def rank_windows(query: Query, best_scores_n: np.ndarray, windows_n4: np.ndarray, *,
                 image_ids: Sequence[str] | None = None, metadata: pd.DataFrame | None = None,
                 loaded_n: np.ndarray | None = None, top_k: int = 10, unique_by: str | None = None,
                 include_self: bool = False, exclude: Iterable[int | str] = (), device: str = "") -> SearchResult:
    """Every image's best window (from :func:`best_windows`, possibly merged from many tasks) →
    the :class:`SearchResult`: validity (loaded, not excluded, not the query image) and top hits."""
    n = int(best_scores_n.shape[0])
    _check_lengths(n, image_ids, metadata, loaded_n)
    ids = tuple(str(i) for i in range(n)) if image_ids is None else tuple(image_ids)
    valid = np.ones(n, dtype=bool) if loaded_n is None else np.asarray(loaded_n, dtype=bool).copy()
    valid[_indices(exclude, ids)] = False
    if not include_self:
        valid[_self_indices(query, ids)] = False
    result = SearchResult(query, best_scores_n, windows_n4, valid, ids,
                          None if metadata is None else metadata.reset_index(drop=True), (), device)
    return dataclasses.replace(result, top=result.top_k(top_k, unique_by))


def _check_lengths(n: int, image_ids: Sequence[str] | None, metadata: pd.DataFrame | None,
                   loaded_n: np.ndarray | None) -> None:
    lengths = {"image_ids": None if image_ids is None else len(image_ids),
               "loaded_n": None if loaded_n is None else int(np.asarray(loaded_n).size),
               "metadata": None if metadata is None else len(metadata)}
    wrong = {name: length for name, length in lengths.items() if length is not None and length != n}
    if wrong:
        raise SearchError(f"the features hold {n} images but " + ", ".join(f"{k} has {v}" for k, v in wrong.items())
                          + ": pass one entry per image")


def _check_features(feats_nhwc: Any, query: Query, scale_nhw: Any) -> int:
    """Shape and dtype checks; returns N."""
    shape = tuple(int(v) for v in feats_nhwc.shape)
    if len(shape) != 4:
        raise SearchError(f"features must be (N, H, W, C), got shape {shape}")
    if shape[1:] != query.feats_hwc.shape:
        raise SearchMismatchError(
            f"the searched features have (H, W, C) {shape[1:]} but the query features have "
            f"{query.feats_hwc.shape} (layer {query.layer!r}): use the same model, layer and input size for both")
    if isinstance(feats_nhwc, FeatureIndex):  # load_features checked its dtype and scales
        if scale_nhw is not None:
            raise SearchError("a FeatureIndex holds its own scales: pass scale_nhw to load_features, not here")
        return shape[0]
    dtype = str(feats_nhwc.dtype).replace("torch.", "")
    if dtype == "int8" and scale_nhw is None:
        raise SearchError("int8 features need scale_nhw (one scale per cell): pass the scales from quantize_int8")
    if not is_zarr(feats_nhwc) and dtype not in ("int8", "float16", "bfloat16", "float32", "float64"):
        raise SearchError(f"features of dtype {dtype} cannot be searched: use float16/32/64, or int8 with scales")
    if scale_nhw is not None and tuple(scale_nhw.shape) != shape[:3]:
        raise SearchError(f"scale_nhw has shape {tuple(scale_nhw.shape)}, expected {shape[:3]} (one per cell)")
    return shape[0]


def _self_indices(query: Query, ids: Sequence[str]) -> list[int]:
    """Where the query image sits in the searched set (by index or id), if it does."""
    out = []
    if query.image_index is not None and 0 <= query.image_index < len(ids):
        out.append(query.image_index)
    if query.image_id is not None and query.image_id in ids:
        out.append(ids.index(query.image_id))
    return out
