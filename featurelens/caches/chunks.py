"""Computing and writing one chunk of a cache build: load, embed, thumbnail, store (see :func:`build_cache`).

Shared by the single-process build, cluster workers and repairs, so all three write the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import zarr
from PIL import Image

from ..images import ImageLoadError
from ..models import FeatureModel
from ..search.quantize import quantize_int8
from .errors import CacheError
from .format import _FEATURE_DTYPE, _FEATURE_DTYPES, _MEASURED, _WRITE_CONFIG, CacheImage

__all__: list[str] = []


@dataclass(frozen=True)
class _Plan:
    """Everything a build decides before touching the store; ``attrs`` are its JSON form."""

    attrs: dict[str, Any]
    table: pd.DataFrame  # static metadata, one row per image

    @property
    def n_images(self) -> int:
        return int(self.attrs["n_images"])

    @property
    def chunk_images(self) -> int:
        return int(self.attrs["chunk_images"])

    @property
    def n_chunks(self) -> int:
        return -(-self.n_images // self.chunk_images)

    @property
    def layers(self) -> dict[str, dict[str, Any]]:
        return self.attrs["layers"]

    @property
    def stored_dtype(self) -> np.dtype:
        """float16, or int8 with a ``scales/<layer>`` array."""
        return _FEATURE_DTYPES[self.attrs["dtype"]]



def _writable_arrays(root: zarr.Group, plan: _Plan) -> dict[str, zarr.Array]:
    """Every array a chunk writes to, configured to store all-zero chunks too."""
    paths = [f"features/{name}" for name in plan.layers] + ["thumbnails", "progress"]
    paths += [f"scales/{name}" for name in plan.layers] if plan.stored_dtype == np.int8 else []
    paths += [f"metadata/{column}" for column in _MEASURED]
    return {path: root[path].with_config(_WRITE_CONFIG) for path in paths}


@dataclass
class _Chunk:
    """One chunk's results: ``feats_nhwc`` per layer as stored (float16 or int8, with ``scales_nhw``
    float32 for int8), ``thumbs_nhwc_u8``, sizes and load errors."""

    feats_nhwc: dict[str, np.ndarray]
    thumbs_nhwc_u8: np.ndarray
    width_n: np.ndarray
    height_n: np.ndarray
    load_error_n: list[str]
    scales_nhw: dict[str, np.ndarray]


def _compute_chunk(images: list[CacheImage], model: FeatureModel, plan: _Plan, batch_size: int,
                   report: Callable[[int], None]) -> _Chunk:
    """Load, embed and thumbnail one chunk's images in batches (unreadable images stay zero)."""
    n = len(images)
    h, w = plan.attrs["thumbnail_hw"]
    chunk = _Chunk({name: np.zeros((n, *entry["shape"]), plan.stored_dtype) for name, entry in plan.layers.items()},
                   np.zeros((n, h, w, 3), np.uint8), np.zeros(n, np.int64), np.zeros(n, np.int64), [""] * n,
                   {name: np.zeros((n, *entry["shape"][:2]), np.float32) for name, entry in plan.layers.items()})
    for start in range(0, n, batch_size):
        batch = range(start, min(n, start + batch_size))
        loaded = {}
        for j in batch:
            image = _load(images[j], chunk, j)
            if image is not None:
                loaded[j] = image
        if loaded:
            _embed(model, plan, list(loaded.values()), list(loaded), chunk)
        for j, image in loaded.items():
            chunk.thumbs_nhwc_u8[j] = np.asarray(image.resize((w, h), Image.BICUBIC), dtype=np.uint8)
        report(batch.stop)
    return chunk


def _load(image: CacheImage, chunk: _Chunk, j: int) -> Image.Image | None:
    """Decode one image, recording its size, or its error (returning None) if it cannot be read."""
    try:
        pil = image.load().convert("RGB")
    except ImageLoadError as exc:
        chunk.load_error_n[j] = str(exc) or type(exc).__name__
        return None
    chunk.width_n[j], chunk.height_n[j] = pil.size
    return pil


def _embed(model: FeatureModel, plan: _Plan, pils: list[Image.Image], rows: list[int], chunk: _Chunk) -> None:
    """One forward pass; features go into ``chunk`` as stored (float16, or int8 and scales) at ``rows``."""
    feats = model.features(pils, list(plan.layers), batch_size=len(pils))
    for name, entry in plan.layers.items():
        feats_nhwc = feats[name]
        if list(feats_nhwc.shape[1:]) != entry["shape"]:
            raise CacheError(f"layer {name!r} of {model.name} gave features of shape {feats_nhwc.shape[1:]}, "
                             f"but its registry entry promises {tuple(entry['shape'])}: the entry is wrong; "
                             "fix its channels/stride in featurelens/zoo.py")
        if plan.stored_dtype == np.int8:
            chunk.feats_nhwc[name][rows], chunk.scales_nhw[name][rows] = _to_int8(feats_nhwc, name)
        else:
            chunk.feats_nhwc[name][rows] = _to_float16(feats_nhwc, name)


def _to_float16(feats_nhwc: np.ndarray, layer: str) -> np.ndarray:
    """float32 → float16, refusing values that do not fit (no silent infinities)."""
    half_nhwc = feats_nhwc.astype(_FEATURE_DTYPE)
    if not np.isfinite(half_nhwc).all():
        peak = float(np.nanmax(np.abs(feats_nhwc)))
        raise CacheError(f"layer {layer!r} gave values float16 cannot hold (largest magnitude {peak:g}, "
                         "or NaN): caches store float16; pick another layer")
    return half_nhwc


def _to_int8(feats_nhwc: np.ndarray, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 → int8 with one scale per cell, refusing NaN and infinities."""
    if not np.isfinite(feats_nhwc).all():
        raise CacheError(f"layer {layer!r} gave NaN or infinite values, which cannot be stored; pick another layer")
    return quantize_int8(feats_nhwc)


def _write_chunk(arrays: dict[str, zarr.Array], rows: slice, chunk: _Chunk) -> None:
    """Write one whole chunk of every array (each write replaces one chunk key atomically)."""
    for name, feats_nhwc in chunk.feats_nhwc.items():
        arrays[f"features/{name}"][rows] = feats_nhwc
        if f"scales/{name}" in arrays:
            arrays[f"scales/{name}"][rows] = chunk.scales_nhw[name]
    arrays["thumbnails"][rows] = chunk.thumbs_nhwc_u8
    arrays["metadata/width"][rows] = chunk.width_n
    arrays["metadata/height"][rows] = chunk.height_n
    arrays["metadata/load_error"][rows] = np.array(chunk.load_error_n, dtype=str)
