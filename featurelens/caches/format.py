"""The cache format: one model's features for a whole image set, in a self-describing Zarr v3 group.

Every search page reads its features from a cache built once by :func:`build_cache`
(or ``python -m featurelens cache build``) and opened read-only by :func:`open_cache`,
which refuses a cache built for another model, layer or preprocessing, naming both values.

Layout of the group (``N`` images, ``k`` images per chunk; all arrays share ``k``)::

    zarr.json                 attributes, JSON only (see below)
    features/<layer>          (N, H, W, C) float16 feats_nhwc, chunks (k, H, W, C),
                              dimension_names ("image", "y", "x", "channel");
                              int8 in a cache built with feature_dtype="int8"
    scales/<layer>            int8 caches only: (N, H, W) float32 scale_nhw, one per feature vector
                              (cell): feature ≈ stored int8 × scale; chunks (k, H, W), ("image", "y", "x")
    thumbnails                (N, h, w, 3) uint8, chunks (k, h, w, 3), ("image", "y", "x", "rgb"):
                              the whole image squashed to the model's aspect, like the model sees it
    metadata/<column>         one 1-D array per table column (str, int64, float64 or bool)
    progress                  (N // k rounded up,) uint8, one chunk per element: 1 = image chunk written

Root attributes: ``featurelens_cache_format`` (1), ``complete``, ``model`` (registry name),
``weights_sha256``, ``preprocessing``, ``input_hw``, ``layers`` ({name: {shape: [H, W, C],
stride}}), ``layout`` "NHWC", ``dtype`` "float16" or "int8", ``scale`` (float16: 1.0, stored =
feature × scale; int8: "per_cell", feature = stored × ``scales/<layer>``),
``dataset`` ({name, description}), ``n_images``, ``chunk_images``, ``thumbnail_hw``,
``created`` / ``completed`` (ISO UTC), ``recipe``, ``image_ids``, ``image_sources``,
``metadata`` (columns and a digest), ``skipped``, ``build_command`` and ``batch_size`` (images per
forward pass; absent in older caches). They are validated as one record,
:class:`~featurelens.caches.attrs.CacheAttrs`, whenever a cache is opened or resumed.

**Integrity.** Every chunk is zstd-compressed with a content checksum, so flipped bits or a cut
chunk fail to decode; reads through :class:`FeatureCache` turn that into a
:class:`CacheCorruptError` naming the chunk's images and the fix (:func:`repair_cache` recomputes
just the damaged chunks). While a build or repair runs it holds ``.featurelens-build.lock`` in the
store (see :mod:`featurelens.caches.lock`).

**Resuming.** Chunk ``i`` (images ``i*k`` to ``(i+1)*k``) is computed in batches that start
at the chunk's first image, written to every array, and only then marked done in
``progress``; ``complete`` is set after the last chunk. On a directory store each key is
replaced atomically, so a build killed at any moment and started again with the same
arguments skips the finished chunks and produces the same bytes as an uninterrupted build
(use the same ``batch_size``: CPU results can depend on the batch shape).

**Unreadable images** do not stop a build: the image keeps its row, its features and
thumbnail are zeros, ``metadata["load_error"]`` holds the reason and
:attr:`FeatureCache.skipped` / :attr:`FeatureCache.loaded_n` report it.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np
from PIL import Image
import zarr
from zarr.codecs import ZstdCodec

from ..models import parse_layer_names
from .errors import CacheError

__all__ = ["CACHE_FORMAT", "TARGET_CHUNK_BYTES", "CacheImage"]

CACHE_FORMAT = 1
"""Version of the on-disk layout written by this module (``featurelens_cache_format``)."""

TARGET_CHUNK_BYTES = 4 * 2**20
"""Chunks hold whole images; ``k`` is chosen so the largest array's chunk is about this size."""

_FEATURE_DTYPE = np.float16
_FEATURE_DTYPES = {"float16": np.dtype(np.float16), "int8": np.dtype(np.int8)}  # feature_dtype → stored dtype
_SCALES_DIMS = ("image", "y", "x")
_COMPRESSORS = (ZstdCodec(level=1, checksum=True),)  # float16 features barely compress: favour speed
_WRITE_CONFIG = {"write_empty_chunks": True}  # every chunk is stored, so a missing one means damage
_MEMBERS = frozenset({"features", "scales", "thumbnails", "metadata", "progress"})
_MEASURED = ("width", "height", "load_error")  # metadata columns filled while building
_IDENTITY = (  # compared when a build starts on an existing cache, in this order
    "model", "weights_sha256", "preprocessing", "layers", "dtype", "n_images", "image_ids", "image_sources",
    "chunk_images", "thumbnail_hw", "dataset", "recipe", "metadata",
)


class CacheImage(Protocol):
    """What :func:`build_cache` needs from an image (:class:`~featurelens.images.GalleryImage` fits)."""

    id: str
    source: str

    def load(self) -> Image.Image: ...


def _layer_list(layers: Sequence[str] | str | None) -> list[str] | None:
    """Layer arguments of the cache API (:func:`~featurelens.models.parse_layer_names`), errors as :class:`CacheError`.

    >>> _layer_list("stage3, stage5"), _layer_list(("stage3",)), _layer_list(None)
    (['stage3', 'stage5'], ['stage3'], None)
    """
    if layers is None:
        return None
    try:
        return list(parse_layer_names(layers))
    except ValueError as exc:
        raise CacheError(str(exc)) from None


def _rebuild_hint(attrs: Mapping[str, Any], model: str | None = None, layers: str | None = None) -> str:
    """``python -m featurelens cache build … --model M --layers L`` for this cache's dataset
    (placeholders where the attributes are missing or of the wrong type)."""
    cached_layers, cached_model = attrs.get("layers"), attrs.get("model")
    layer_list = layers or (",".join(map(str, cached_layers)) if isinstance(cached_layers, dict) else "LAYERS")
    model_name = model or (cached_model if isinstance(cached_model, str) else "MODEL")
    return f"`python -m featurelens cache build --images DIR --model {model_name} --layers {layer_list} --out NEW_PATH`"


def _expected_arrays(attrs: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype | None]]:
    """``{path: (shape, dtype)}`` of every array the attributes promise (dtype None: strings)."""
    n, (h, w) = attrs["n_images"], attrs["thumbnail_hw"]
    stored = _FEATURE_DTYPES.get(attrs["dtype"], np.dtype(_FEATURE_DTYPE))
    expected: dict[str, tuple[tuple[int, ...], np.dtype | None]] = {
        f"features/{name}": ((n, *entry["shape"]), stored) for name, entry in attrs["layers"].items()}
    if stored == np.int8:
        expected |= {f"scales/{name}": ((n, *entry["shape"][:2]), np.dtype(np.float32))
                     for name, entry in attrs["layers"].items()}
    expected["thumbnails"] = ((n, h, w, 3), np.dtype(np.uint8))
    for spec in attrs["metadata"]["columns"]:
        expected[spec["array"]] = ((n,), None if spec["kind"] == "str" else np.dtype(spec["kind"]))
    return expected



def _new_array(root: zarr.Group, path: str, shape: tuple[int, ...], dtype: Any, dims: tuple[str, ...],
               chunk_images: int, attributes: dict[str, Any]) -> zarr.Array:
    """A chunked-by-whole-images array with zstd (checksummed) compression."""
    fill: Any = "" if dtype is str else 0
    return root.create_array(path, shape=shape, dtype=dtype, chunks=(chunk_images, *shape[1:]),
                             dimension_names=dims, attributes=attributes, compressors=_COMPRESSORS,
                             fill_value=fill, config=_WRITE_CONFIG)
